// Drives `polyphony mcp` with the reference MCP client library (@modelcontextprotocol/sdk):
// handshake, tools/list, calls whose structured results the library checks against each
// tool's output schema, and errors. Usage: node client.mjs POLYPHONY_CLI POLYPHONY_HOME REPO
import assert from "node:assert/strict";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { McpError } from "@modelcontextprotocol/sdk/types.js";

const [cli, home, repo] = process.argv.slice(2);
const transport = new StdioClientTransport({
  command: cli,
  args: ["mcp"],
  env: { ...process.env, POLYPHONY_HOME: home },
  stderr: "inherit",
});
const client = new Client({ name: "polyphony-sdk-test", version: "1.0.0" });
await client.connect(transport);
const text = (result) => result.content.map((c) => c.text).join("");

assert.equal(client.getServerVersion().name, "polyphony");
assert.ok(client.getServerCapabilities().tools, "the server declares tools");
console.log("initialized");

const { tools } = await client.listTools();
assert.deepEqual(tools.map((t) => t.name).sort(),
  ["cancel", "logs", "retry", "route_explain", "show", "spawn", "status", "team", "wait"]);
for (const t of tools) {
  assert.equal(t.inputSchema.type, "object", t.name);
  assert.equal(t.outputSchema.type, "object", t.name);
}
console.log(`tools: ${tools.map((t) => t.name).join(" ")}`);

// The library validates structuredContent against the tool's outputSchema on these calls.
const status = await client.callTool({ name: "status", arguments: { limit: 5 } });
assert.equal(status.isError, false, text(status));
assert.deepEqual(status.structuredContent, { tasks: [] });
const route = await client.callTool({ name: "route_explain", arguments: { title: "Fix the greeting", repo } });
assert.equal(route.isError, false, text(route));
assert.equal(typeof route.structuredContent.total, "number");
assert.ok(["solo", "review", "strong"].includes(route.structuredContent.plan));
assert.deepEqual(JSON.parse(text(route)), route.structuredContent);
console.log(`route_explain: total ${route.structuredContent.total}, plan ${route.structuredContent.plan}`);

// Failures are tool results with isError and the CLI's message.
const spawn = await client.callTool({ name: "spawn", arguments: { title: "Fix the greeting", repo } });
assert.equal(spawn.isError, true);
assert.match(text(spawn), /no coordinator listens here/);
const badArgs = await client.callTool({ name: "spawn", arguments: { title: 7 } });
assert.equal(badArgs.isError, true);
assert.equal(text(badArgs), "arguments.title: must be a string, got an integer");
const unknownTask = await client.callTool({ name: "show", arguments: { id: "zzzzzzzz" } });
assert.equal(unknownTask.isError, true);
assert.equal(text(unknownTask), "zzzzzzzz: no task with this id (see `polyphony status`)");
// An unknown tool is a protocol error.
await assert.rejects(client.callTool({ name: "deploy", arguments: {} }),
  (e) => e instanceof McpError && e.code === -32602 && /unknown tool: deploy/.test(e.message));
console.log("errors: as expected");

await client.close();
console.log("sdk client: all checks passed");
