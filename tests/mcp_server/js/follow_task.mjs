// The official TypeScript MCP client, with its DEFAULT request options (60 s timeout, no
// resetTimeoutOnProgress), as MCP hosts use it. Prints one JSON line per event on stdout.
//
//   node follow_task.mjs follow  URL KEY SESSION_ID TASK   execute_task, then wait_for_task until done
//   node follow_task.mjs timeout URL KEY SESSION_ID TASK   execute_task with a 3 s timeout, then exit
//   node follow_task.mjs wait    URL KEY SESSION_ID        wait_for_task until done
//   node follow_task.mjs cancel  URL KEY SESSION_ID        cancel_task
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const [mode, url, key, sessionId, task] = process.argv.slice(2);
const started = Date.now();
const out = (record) =>
  process.stdout.write(JSON.stringify({ t: (Date.now() - started) / 1000, ...record }) + "\n");

const transport = new StreamableHTTPClientTransport(new URL(url), {
  requestInit: { headers: { "X-Anthropic-API-Key": key } },
});
const client = new Client({ name: "ts-sdk-test", version: "1.0.0" });
await client.connect(transport);

const onprogress = (p) => out({ progress: p.progress, message: p.message });
const call = async (name, args, options = {}) => {
  const result = await client.callTool({ name, arguments: args }, undefined, {
    onprogress,
    ...options,
  });
  out({ tool: name, isError: result.isError ?? false, structured: result.structuredContent });
  return result;
};

try {
  if (mode === "follow" || mode === "timeout") {
    const options = mode === "timeout" ? { timeout: 3000 } : {};
    let result = await call("execute_task", { session_id: sessionId, task }, options);
    while (result.structuredContent?.status === "running") {
      result = await call("wait_for_task", { session_id: sessionId });
    }
  } else if (mode === "wait") {
    let result = await call("wait_for_task", { session_id: sessionId });
    while (result.structuredContent?.status === "running") {
      result = await call("wait_for_task", { session_id: sessionId });
    }
  } else if (mode === "cancel") {
    await call("cancel_task", { session_id: sessionId });
  }
} catch (error) {
  out({ error: String(error?.message ?? error), code: error?.code ?? null });
}
await client.close();
