// polyphony-runner: PID 1 of a task container. It connects to the worker's socket, then runs the
// agent and verify as the worker asks, one process at a time, streaming their output and exit
// status back. It replaces `docker exec`, whose engine round trips and runc process cost about a
// third of a CPU-second each on a small machine. It is static, so it runs in any image.
//
// The worker is the only peer: the socket is gone from the container's view once the runner has
// connected, and the runner is not dumpable, so nothing in the container can read its memory or
// take its descriptors. When the worker's end closes the runner exits, and the container with it.
#pragma once

namespace polyphony::runner {

// Serves the worker at `socket_path` until it hangs up. Returns the program's exit status:
// 0 when the worker hung up, 1 when it cannot be reached, 2 on a malformed frame.
int serve(const char* socket_path);

}  // namespace polyphony::runner
