// Messages with every field set to a valid, non-default value, shared by the protocol tests.
#pragma once

#include <string>
#include <vector>

#include "protocol/messages.h"

namespace polyphony::protocol::samples {

inline RunSpec run_spec() {
  RunSpec s;
  s.task_id = "task-42_b";
  s.attempt = 3;
  s.epoch = 17;
  s.title = "Fix the off-by-one in the pager — ünïcödé ✓";
  s.body = "Steps:\n1. open pager.c\n2. fix it";
  s.task_type = "bugfix";
  s.risk = "low";
  s.repo_url = "/srv/git/app.git";
  s.base_branch = "main";
  s.branch = "polyphony/task-42_b-fix-pager";
  s.agent.name = "scripted";
  s.agent.command = {"/opt/agent/run", "--task", "task-42_b", "--verbose"};
  s.agent.env = {{"HOME", "/home/agent"}, {"API_TOKEN", "s3cr3t"}};
  s.agent.mounts = {{"/etc/polyphony/identities/bot", "/home/agent/.ssh", true},
                    {"/var/cache/polyphony", "/cache", false}};
  s.image = "polyphony-worker:latest";
  s.network_mode = "none";
  s.cpus = 1.5;
  s.memory_bytes = 2LL * 1024 * 1024 * 1024;
  s.run_timeout_s = 1800;
  s.verify_timeout_s = 600;
  s.stall_timeout_s = 300;
  s.verify_command = "make test";
  s.plan = "review";
  s.reviewer.name = "claude";
  s.reviewer.command = {"claude", "-p", "Review: fix the pager"};
  s.reviewer.env = {{"ANTHROPIC_API_KEY", "sk-test"}};
  s.review_rounds = 2;
  s.rework_command = {"codex", "exec", "fix the pager; read /polyphony/review.md"};
  s.feedback = "verify `make test` exited with status 2";
  s.agent.stdin_text = "Fix the pager\n\nSteps: ...";
  s.agent.output_format = "claude-stream-json";
  s.agent.config_env = "CLAUDE_CONFIG_DIR";
  s.agent.files = {{".credentials.json", std::string("{\"token\":\"t\0k\"}", 17), 0600},
                   {"sub/dir/config.toml", "", 0644}};
  s.rework_stdin = "Fix the pager; read /polyphony/review.md";
  s.max_turns = 30;
  s.max_tokens = 200000;
  s.run_timeout_is_budget = true;
  return s;
}

inline Dispatch dispatch() {
  return Dispatch{run_spec()};
}

inline Hello hello() {
  Hello h;
  h.protocol_version = kProtocolVersion;
  h.worker_id = "box-1.local";
  h.hostname = "box-1";
  h.version = "0.1.0";
  h.capacity = 4;
  h.labels = {"gpu", "fast-disk"};
  h.image_present = true;
  h.free_disk_bytes = 123'456'789'012;
  h.running = {{"task-1", 1, 5}, {"task-2", 2, 9}};
  return h;
}

inline Welcome welcome() {
  return Welcome{kProtocolVersion, "coord-a", 250, 4};
}

inline Heartbeat heartbeat() {
  return Heartbeat{991, 3, 1'767'225'600'123};
}

inline TaskUpdate task_update() {
  return TaskUpdate{"task-42_b", 3, 17, "VERIFYING", "container 3f2a; make test"};
}

inline LogChunk log_chunk() {
  return LogChunk{"task-42_b", 3, 17, "agent", 12, std::string("line\n\xff\xfe\0bytes", 13)};
}

inline TaskResult task_result() {
  return TaskResult{"task-42_b",
                    3,
                    17,
                    "failed",
                    "verify",
                    "2 tests failed",
                    "polyphony/task-42_b-fix-pager",
                    "0123456789abcdef0123456789abcdef01234567",
                    "89abcdef0123456789abcdef0123456789abcdef",
                    "fedcba9876543210fedcba9876543210fedcba98",
                    {{"implementer", "claude", "claude-sonnet-4-5", 6, 12000, 800, 0.0421, "Fixed the pager."},
                     {"reviewer", "codex", "", 2, 3000, 90, 0, "approve"}},
                    ""};
}

inline ResultAck result_ack() {
  return ResultAck{"task-42_b", 3, 17};
}

inline LandRequest land_request() {
  return LandRequest{"task-42_b", 3, 17};
}

inline LandGrant land_grant() {
  return LandGrant{"task-42_b", 3, 17, false, "stale lease epoch 17 (current 19)"};
}

inline Cancel cancel() {
  return Cancel{"task-42_b", 17, "superseded by attempt 4"};
}

inline Submit submit() {
  return Submit{
      "Fix auth bug", "It fails.\n```sh\nmake\n```", "/srv/git/app.git", "main", "bugfix", "high", {"auth", "p1"},
      "scripted"};
}

inline Control control() {
  return Control{"task-42_b", "cancel"};
}

inline ClientReply client_reply() {
  return ClientReply{true,
                     "",
                     "",
                     "task-42_b",
                     "LANDED",
                     "landed",
                     2,
                     "scripted",
                     "polyphony/task-42_b-fix-pager",
                     "89abcdef0123456789abcdef0123456789abcdef"};
}

inline WorkersQuery workers_query() {
  return WorkersQuery{};
}

inline Watch watch() {
  return Watch{"task-42_b"};
}

inline WorkersReply workers_reply() {
  WorkersReply r;
  r.coordinator_id = "coord-1:42";
  WorkerStatus a{"gpu-box-1",           "gpu-box-1.lan",         "0.1.0", "busy",      850,         2,    2,
                 {"gpu", "arch=amd64"}, {"task-42_b", "task-7"}, true,    512LL << 30, "gpu-box-1", true, -1250};
  WorkerStatus b{"arm-1", "arm-1.lan", "0.1.0", "lost", 61000, 4, 0, {"arch=arm64"}, {}, false, 0, ""};
  r.workers = {a, b};
  return r;
}

inline ViewQuery view_query() {
  ViewQuery q;
  q.view = "route_explain";
  q.task_ids = {"task-42_b"};
  q.states = {"failed", "BLOCKED"};
  q.repo = "app";
  q.limit = 20;
  q.attempt = 2;
  q.offset = 4096;
  q.max_bytes = 1024;
  q.title = "Fix auth bug";
  q.body = "It fails.";
  q.base_branch = "main";
  q.task_type = "bugfix";
  q.risk = "high";
  q.labels = {"auth"};
  q.agent = "scripted";
  return q;
}

inline ViewReply view_reply() {
  return ViewReply{true, "", "", "", R"({"total":3,"plan":"solo"})"};
}

inline Goodbye goodbye() {
  return Goodbye{"stopping (SIGTERM)"};
}

inline WorkerRemove worker_remove() {
  return WorkerRemove{"gpu-box-1", true};
}

inline CleanupRequest cleanup_request() {
  return CleanupRequest{7, false};
}

inline CleanupReport cleanup_report() {
  return CleanupReport{7, "gpu-box-1", 3, 2, true, ""};
}

inline CleanupReply cleanup_reply() {
  return CleanupReply{{cleanup_report(), CleanupReport{7, "arm-1", 0, 0, false, "no answer within 8 s"}}};
}

inline std::vector<Message> all() {
  return {hello(),       welcome(),      heartbeat(),     dispatch(),        task_update(),    log_chunk(),
          task_result(), result_ack(),   land_request(),  land_grant(),      cancel(),         submit(),
          control(),     client_reply(), workers_query(), workers_reply(),   watch(),          view_query(),
          view_reply(),  goodbye(),      worker_remove(), cleanup_request(), cleanup_report(), cleanup_reply()};
}

}  // namespace polyphony::protocol::samples
