/**
 * `runnel <command> [flags]`. Bad input gets one clear line on stderr and a non-zero exit.
 */

import { parseArgs } from "./cli/args.js";
import { CliError, DEFAULT_URL, endpointFrom } from "./cli/client.js";
import { produce } from "./cli/produce.js";
import { parseFormat, query } from "./cli/query.js";
import { tail } from "./cli/tail.js";
import { ConfigError, loadConfig, type SettingName } from "./config/config.js";
import { StartupError, startRunnel } from "./server.js";

const USAGE = `usage: runnel start [--data-dir DIR] [--port PORT] [--host ADDR] [--database-url URL] [--log-level LEVEL]
                    [--sources FILE]
       runnel produce <stream> [FILE|-] [--batch-size N]   NDJSON or a JSON array, in batches
       runnel tail <stream>                                new events as NDJSON, until Ctrl-C
       runnel query "<sql>" [--format table|ndjson|csv]
       client commands take --url URL (env RUNNEL_URL, default ${DEFAULT_URL})
       and --key KEY (an API key or token; env RUNNEL_API_KEY)

start runs Runnel in one process: the durable log, stream processing, analytics and the HTTP API.
Every flag has an environment variable (RUNNEL_DATA_DIR, RUNNEL_PORT, RUNNEL_HOST, …); flags win.
The first start needs RUNNEL_ADMIN_PASSWORD to create the account "admin".`;

const FLAGS: Record<string, SettingName> = {
  "--data-dir": "dataDir",
  "--port": "port",
  "--host": "host",
  "--database-url": "databaseUrl",
  "--kafka-brokers": "kafkaBrokers",
  "--log-level": "logLevel",
  "--max-body-bytes": "maxBodyBytes",
  "--max-event-bytes": "maxEventBytes",
  "--token-ttl": "tokenTtl",
  "--default-partitions": "defaultPartitions",
  "--sources": "sourcesFile",
};

export class UsageError extends Error {
  override name = "UsageError";
}

export function parseFlags(args: readonly string[]): Partial<Record<SettingName, string>> {
  const flags: Partial<Record<SettingName, string>> = {};
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    const [name, inline] =
      arg.startsWith("--") && arg.includes("=")
        ? [arg.slice(0, arg.indexOf("=")), arg.slice(arg.indexOf("=") + 1)]
        : [arg, undefined];
    const setting = FLAGS[name];
    if (setting === undefined) throw new UsageError(`unknown option "${name}"`);
    const value = inline ?? args[++i];
    if (value === undefined) throw new UsageError(`option ${name} needs a value`);
    flags[setting] = value;
  }
  return flags;
}

export async function main(argv: readonly string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === "help" || command === "--help" || command === "-h") {
    process.stdout.write(`${USAGE}\n`);
    return command === undefined ? 2 : 0;
  }
  try {
    if (command === "produce" || command === "tail" || command === "query") return await runClient(command, rest);
    if (command !== "start") throw new UsageError(`unknown command "${command}"`);
    const config = loadConfig(parseFlags(rest));
    const runnel = await startRunnel(config);
    process.stderr.write(`runnel: listening on ${runnel.url} (data in ${config.dataDir})\n`);
    await new Promise<void>((resolve) => {
      const shutdown = (): void => {
        process.off("SIGINT", shutdown);
        process.off("SIGTERM", shutdown);
        runnel.stop().then(resolve, resolve);
      };
      process.on("SIGINT", shutdown);
      process.on("SIGTERM", shutdown);
    });
    // Everything is stopped; a client library's stray socket or timer must not keep the process up.
    setTimeout(() => process.exit(0), 2_000).unref();
    return 0;
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`runnel: ${e.message}\n${USAGE}\n`);
      return 2;
    }
    if (e instanceof ConfigError || e instanceof StartupError) {
      process.stderr.write(`runnel: ${e.message}\n`);
      return 1;
    }
    process.stderr.write(`runnel: failed to start: ${(e as Error).message}\n`);
    return 1;
  }
}

/** produce, tail and query: talk to a running server; every failure is one line and exit 1 (2 for usage). */
async function runClient(command: "produce" | "tail" | "query", args: readonly string[]): Promise<number> {
  try {
    const { flags, positional } = parseArgs(args, ["url", "key", "batch-size", "format"]);
    const endpoint = endpointFrom(flags, process.env);
    const [first, second, ...extra] = positional;
    if (first === undefined) throw new CliError(`${command} needs ${command === "query" ? '"<sql>"' : "<stream>"}`, 2);
    if (extra.length > 0 || (command !== "produce" && second !== undefined)) {
      throw new CliError(`unexpected argument "${extra[0] ?? second}"`, 2);
    }
    if (command === "produce") {
      const batchSize = Number(flags["batch-size"] ?? "1000");
      if (!Number.isInteger(batchSize) || batchSize < 1 || batchSize > 100_000) {
        throw new CliError(`--batch-size must be an integer from 1 to 100000, got "${flags["batch-size"]}"`, 2);
      }
      await produce({
        endpoint,
        stream: first,
        input: second ?? "-",
        batchSize,
        stdin: process.stdin,
        ...(process.stderr.isTTY && { progress: process.stderr }),
      });
      return 0;
    }
    if (command === "query") {
      process.stdout.write(await query(endpoint, first, parseFormat(flags.format, process.stdout.isTTY === true)));
      return 0;
    }
    const abort = new AbortController();
    const stop = (): void => abort.abort();
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
    try {
      await tail(endpoint, first, process.stdout, abort.signal);
    } finally {
      process.off("SIGINT", stop);
      process.off("SIGTERM", stop);
    }
    return 0;
  } catch (e) {
    if (e instanceof CliError) {
      process.stderr.write(`runnel ${command}: ${e.message}\n`);
      return e.exitCode;
    }
    process.stderr.write(`runnel ${command}: ${(e as Error).message}\n`);
    return 1;
  }
}
