// The fields of a task that a client sets (title, body, repo, base branch, type, risk, labels,
// agent), as they travel: in a Submit, in a route_explain ViewQuery, and as a JSON object (the
// queue's rows and the dashboard's POST /api/tasks), each written in one place.
#pragma once

#include <nlohmann/json.hpp>

#include "common/result.h"
#include "coordinator/task.h"
#include "protocol/messages.h"

namespace polyphony {

// The Submit a client sends for `request` (its id, source and time are the coordinator's to set).
protocol::Submit submit_message(const TaskRequest& request);

// The request a Submit asks for, with source "client" and no id yet.
TaskRequest submitted_request(const protocol::Submit& m);

// A route_explain ViewQuery for `request`: score and route it, queue nothing.
protocol::ViewQuery route_explain_query(const TaskRequest& request);

// The client-set fields as a JSON object with the Submit's keys ("base_branch", "task_type", ...).
nlohmann::json task_fields_json(const TaskRequest& request);

// The client-set fields from such an object (a missing key: empty). Error "usage" at "body" when
// one has the wrong type (labels must be a list of strings, the others strings).
Result<TaskRequest> task_fields_from_json(const nlohmann::json& j);

}  // namespace polyphony
