/**
 * `runnel <command> [flags]`. Bad input gets one clear line on stderr and a non-zero exit.
 */
import { ConfigError, loadConfig, type SettingName } from "./config/config.js";
import { StartupError, startRunnel } from "./server.js";

const USAGE = `usage: runnel start [--data-dir DIR] [--port PORT] [--host ADDR] [--database-url URL] [--log-level LEVEL]

Runs Runnel in one process: the durable log, stream processing, analytics and the HTTP API.
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
