// The CLI's views (status, show, logs, route --explain) over the client endpoint: the
// coordinator's answer to a ViewQuery, and a client's question.
#include <nlohmann/json.hpp>

#include "cli/client_connection.h"
#include "cli/task_views.h"
#include "coordinator/submission.h"

namespace polyphony::cli {

namespace {

using nlohmann::json;

Status one_task(const protocol::ViewQuery& q) {
  if (q.task_ids.size() == 1) return {};
  return make_error("usage", q.view + " takes exactly one task id", "ID");
}

Args status_args(const protocol::ViewQuery& q) {
  Args args;
  args.positional = q.task_ids;
  if (!q.states.empty()) args.values["state"] = q.states;
  if (!q.repo.empty()) args.values["repo"] = {q.repo};
  if (q.limit > 0) args.values["limit"] = {std::to_string(q.limit)};
  return args;
}

Result<json> logs_view(const protocol::ViewQuery& q, const Config& config) {
  POLY_TRY(one_task(q));
  Args args;
  args.positional = q.task_ids;
  if (q.attempt > 0) args.values["attempt"] = {std::to_string(q.attempt)};
  auto all = logs_text(args, config);
  if (!all.ok()) return all.error();
  const auto [start, end] = log_window(*all, q.offset, std::min(q.max_bytes, protocol::kMaxViewLogBytes));
  return json{{"id", q.task_ids[0]},
              {"text", all->substr(start, end - start)},
              {"offset", start},
              {"next_offset", end},
              {"total_bytes", all->size()}};
}

// The task as TITLE and task flags, as `route --explain` reads them.
Args route_args(const protocol::ViewQuery& q) {
  Args args;
  args.positional = {q.title};
  const std::pair<const char*, const std::string*> flags[] = {{"body", &q.body},        {"repo", &q.repo},
                                                              {"base", &q.base_branch}, {"type", &q.task_type},
                                                              {"risk", &q.risk},        {"agent", &q.agent}};
  for (const auto& [flag, value] : flags) {
    if (!value->empty()) args.values[flag] = {*value};
  }
  if (!q.labels.empty()) args.values["label"] = q.labels;
  return args;
}

Result<json> route_view(const protocol::ViewQuery& q, const Settings& settings) {
  // A client may be on another host: the local paths it may name are the config's to say, as
  // for a task it submits.
  TaskRequest asked;
  asked.repo = q.repo;
  if (auto allowed = check_client_repo(asked, settings.config); !allowed.ok()) {
    return make_error(allowed.error().code, allowed.error().message, "--repo");
  }
  return route_explain_json(route_args(q), settings);
}

Result<json> view_json(const protocol::ViewQuery& q, const Settings& settings) {
  if (q.view == "status") return status_json(status_args(q), settings.config);
  if (q.view == "show") {
    POLY_TRY(one_task(q));
    return show_json(q.task_ids[0], settings.config);
  }
  if (q.view == "logs") return logs_view(q, settings.config);
  if (q.view == "route_explain") return route_view(q, settings);
  return make_error("usage", "no view named '" + q.view + "'", "view");
}

}  // namespace

std::pair<size_t, size_t> log_window(const std::string& text, int64_t offset, int64_t max_bytes) {
  const size_t size = text.size();
  const size_t bytes = static_cast<size_t>(std::max<int64_t>(max_bytes, 0));
  size_t start = offset < 0 ? (size > bytes ? size - bytes : 0) : std::min(size, static_cast<size_t>(offset));
  size_t end = std::min(size, start + bytes);
  auto continuation = [&](size_t i) { return i < size && (static_cast<unsigned char>(text[i]) & 0xC0) == 0x80; };
  // A page starts and ends between characters: a tail moves its start forward, a cut end back.
  while (start < end && continuation(start)) ++start;
  while (end > start && end < size && continuation(end)) --end;
  return {start, end};
}

protocol::ViewReply answer_view(const protocol::ViewQuery& query, const Settings& settings) {
  protocol::ViewReply reply;
  auto view = view_json(query, settings);
  if (!view.ok()) {
    reply.code = view.error().code;
    reply.error = view.error().message;
    reply.where = view.error().where;
    return reply;
  }
  reply.json = view->dump(-1, ' ', false, json::error_handler_t::replace);
  if (reply.json.size() + kViewReplyMargin > protocol::kMaxFrameBytes) {
    return protocol::ViewReply{false, "usage",
                               "the answer would be " + std::to_string(reply.json.size()) +
                                   " bytes, more than one frame holds: ask for fewer tasks (limit, states, repo)",
                               "limit", ""};
  }
  reply.ok = true;
  return reply;
}

Result<json> ask_view(zmq::context_t& ctx, const ClientTarget& target, const protocol::ViewQuery& query) {
  auto msg = request(ctx, target.endpoint, query, target.keys, kViewTimeout);
  if (!msg.ok()) return msg.error();
  const auto* r = std::get_if<protocol::ViewReply>(&*msg);
  if (r == nullptr) {
    // A coordinator from before view queries refuses the type with a client_reply.
    const auto* refused = std::get_if<protocol::ClientReply>(&*msg);
    return make_error("protocol",
                      refused ? "the coordinator does not answer view queries (" + refused->error +
                                    "); upgrade it, or run this on its host"
                              : "the coordinator answered with a " + protocol::type_name(*msg),
                      target.endpoint);
  }
  if (!r->ok) return make_error(r->code.empty() ? "usage" : r->code, r->error, r->where);
  auto j = json::parse(r->json, nullptr, false);
  if (j.is_discarded()) return make_error("protocol", "the coordinator's view is not JSON", target.endpoint);
  return j;
}

}  // namespace polyphony::cli
