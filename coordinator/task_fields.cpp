// A task's client-set fields in their three travelling shapes.
#include "coordinator/task_fields.h"

namespace polyphony {

namespace {

// Copies the client-set fields from `from` into `to`: TaskRequest, Submit and ViewQuery name them
// alike.
template <class From, class To>
To with_task_fields(const From& from, To to) {
  to.title = from.title;
  to.body = from.body;
  to.repo = from.repo;
  to.base_branch = from.base_branch;
  to.task_type = from.task_type;
  to.risk = from.risk;
  to.labels = from.labels;
  to.agent = from.agent;
  return to;
}

}  // namespace

protocol::Submit submit_message(const TaskRequest& r) {
  return with_task_fields(r, protocol::Submit{});
}

TaskRequest submitted_request(const protocol::Submit& m) {
  TaskRequest r;
  r.source = "client";
  return with_task_fields(m, std::move(r));
}

protocol::ViewQuery route_explain_query(const TaskRequest& r) {
  protocol::ViewQuery q;
  q.view = "route_explain";
  return with_task_fields(r, std::move(q));
}

nlohmann::json task_fields_json(const TaskRequest& r) {
  return nlohmann::json{
      {"title", r.title},         {"body", r.body}, {"repo", r.repo},     {"base_branch", r.base_branch},
      {"task_type", r.task_type}, {"risk", r.risk}, {"labels", r.labels}, {"agent", r.agent}};
}

Result<TaskRequest> task_fields_from_json(const nlohmann::json& j) {
  TaskRequest r;
  try {
    r.title = j.value("title", "");
    r.body = j.value("body", "");
    r.repo = j.value("repo", "");
    r.base_branch = j.value("base_branch", "");
    r.task_type = j.value("task_type", "");
    r.risk = j.value("risk", "");
    r.labels = j.value("labels", std::vector<std::string>{});
    r.agent = j.value("agent", "");
  } catch (const nlohmann::json::exception&) {
    return make_error("usage", "fields must be strings (labels a list of strings)", "body");
  }
  return r;
}

}  // namespace polyphony
