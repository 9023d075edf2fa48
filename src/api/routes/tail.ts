/**
 * A live tail of a stream as Server-Sent Events, scoped like queries: a `user` sees only their
 * own events. Starts at the end of the log; each event is one `data:` line of JSON.
 */
import type { FastifyReply, FastifyRequest } from "fastify";
import type { StreamDefinition } from "../../control/types.js";
import type { AuthPrincipal } from "../auth/authenticate.js";
import type { ApiServices } from "../services.js";
import { openEventStream } from "../sse.js";

const decoder = new TextDecoder();

export async function streamTail(
  request: FastifyRequest,
  reply: FastifyReply,
  services: ApiServices,
  stream: StreamDefinition,
  principal: AuthPrincipal,
): Promise<void> {
  const { log } = services;
  const positions = await log.endOffsets(stream.name);
  const onlyKey = principal.role === "user" ? principal.username : undefined;

  let closed = false;
  let unsubscribe = (): void => {};
  const sse = openEventStream(request, reply, `tail of ${stream.name}`, () => {
    closed = true;
    unsubscribe();
  });
  let draining = false;
  let again = false;
  const drain = async (): Promise<void> => {
    if (draining) {
      again = true;
      return;
    }
    draining = true;
    try {
      do {
        again = false;
        for (let partition = 0; partition < positions.length && !closed; partition++) {
          for (;;) {
            const records = await log.read(stream.name, partition, positions[partition]!, { maxRecords: 500 });
            if (records.length === 0) break;
            positions[partition] = records[records.length - 1]!.offset + 1;
            for (const record of records) {
              if (onlyKey !== undefined && record.key !== onlyKey) continue;
              sse.write(`id: ${partition}-${record.offset}\ndata: ${decoder.decode(record.value)}\n\n`);
            }
          }
        }
      } while (again && !closed);
    } catch (e) {
      request.log.warn({ err: e }, "tail stopped");
      sse.close();
    } finally {
      draining = false;
    }
  };
  unsubscribe = log.onAppend(stream.name, () => void drain());
}
