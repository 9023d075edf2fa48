/** `runnel tail <stream>`: the live tail (Server-Sent Events) as NDJSON on stdout, until interrupted. */
import type { Command } from "./args.js";
import { CLIENT_FLAGS, describeFailure, type Endpoint, endpointFrom, headersFor, request } from "./client.js";
import { CliError } from "./errors.js";

export const tailCommand: Command<typeof CLIENT_FLAGS> = {
  name: "tail",
  operands: ["<stream>"],
  flags: CLIENT_FLAGS,
  summary: "print a stream's new events as NDJSON until interrupted (Ctrl-C)",
  async run({ flags, operands }) {
    const endpoint = endpointFrom(flags, process.env);
    const abort = new AbortController();
    const stop = (): void => abort.abort();
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
    try {
      await tail(endpoint, operands[0]!, process.stdout, abort.signal);
    } finally {
      process.off("SIGINT", stop);
      process.off("SIGTERM", stop);
    }
    return 0;
  },
};

export async function tail(
  endpoint: Endpoint,
  stream: string,
  out: NodeJS.WritableStream,
  signal: AbortSignal,
): Promise<void> {
  const url = `${endpoint.url}/api/v1/streams/${encodeURIComponent(stream)}/tail`;
  let res: Response;
  try {
    res = await request(url, { headers: headersFor(endpoint, { accept: "text/event-stream" }), signal });
  } catch (e) {
    if (signal.aborted) return;
    throw e;
  }
  if (!res.ok || res.body === null) throw new CliError(await describeFailure(res));
  const decoder = new TextDecoder();
  let pending = "";
  try {
    for await (const chunk of res.body) {
      pending += decoder.decode(chunk as Uint8Array, { stream: true });
      let end = pending.indexOf("\n\n");
      while (end !== -1) {
        const message = pending.slice(0, end);
        pending = pending.slice(end + 2);
        // SSE: several data: lines of one message join with newlines; comments start with ":".
        const data = message
          .split("\n")
          .filter((l) => l.startsWith("data:"))
          .map((l) => l.slice(l.startsWith("data: ") ? 6 : 5));
        if (data.length > 0) out.write(`${data.join("\n")}\n`);
        end = pending.indexOf("\n\n");
      }
    }
  } catch (e) {
    if (signal.aborted) return;
    throw new CliError(`the tail was interrupted: ${(e as Error).message}`);
  }
  if (!signal.aborted) throw new CliError("the server closed the tail");
}
