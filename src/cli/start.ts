/** `runnel start`: runs Runnel in this process until SIGINT or SIGTERM. */
import { ConfigError, DEFAULTS, ENV_NAMES, loadConfig, type SettingName } from "../config/config.js";
import { StartupError, startRunnel } from "../server.js";
import type { Command, Flag } from "./args.js";
import { CliError, UsageError } from "./errors.js";

/** Each flag of `start` is a setting of src/config/config.ts; its environment variable and default come from there. */
const SETTINGS = {
  "data-dir": ["dataDir", "DIR", "where the log, analytics and control data live"],
  port: ["port", "PORT", "HTTP port (0 picks a free one)"],
  host: ["host", "ADDR", "bind address"],
  "database-url": ["databaseUrl", "URL", "a postgres:// URL for the control plane (default: embedded PGlite)"],
  "kafka-brokers": ["kafkaBrokers", "HOSTS", "host:port,… of Apache Kafka as the log (default: the local log)"],
  "log-level": ["logLevel", "LEVEL", "fatal, error, warn, info, debug or silent"],
  "max-body-bytes": ["maxBodyBytes", "SIZE", "largest request body"],
  "max-event-bytes": ["maxEventBytes", "SIZE", "largest single event"],
  "token-ttl": ["tokenTtl", "DURATION", "lifetime of login tokens"],
  "default-partitions": ["defaultPartitions", "N", "partitions of a new stream"],
  sources: ["sourcesFile", "FILE", "YAML or JSON file of MQTT, Kafka topic and file sources"],
} as const satisfies Record<string, readonly [SettingName, string, string]>;

type StartFlags = { readonly [K in keyof typeof SETTINGS]: Flag };

const FLAGS = Object.fromEntries(
  Object.entries(SETTINGS).map(([flag, [setting, value, help]]) => {
    const fallback = (DEFAULTS as Partial<Record<SettingName, string>>)[setting];
    const source = `env ${ENV_NAMES[setting]}${fallback === undefined ? "" : `, default ${fallback}`}`;
    return [flag, { value, help: `${help} (${source})` }];
  }),
) as StartFlags;

export const startCommand: Command<StartFlags> = {
  name: "start",
  operands: [],
  flags: FLAGS,
  summary: "run Runnel in one process: the durable log, stream processing, analytics and the HTTP API",
  details: `Every flag has an environment variable; flags win. Settings without a flag (RUNNEL_TOKEN_SECRET,
RUNNEL_CORS_ORIGINS, …) are listed in the README. The first start needs RUNNEL_ADMIN_PASSWORD to
create the account "admin".`,
  async run({ flags }) {
    const settings: Partial<Record<SettingName, string>> = {};
    for (const [flag, [setting]] of Object.entries(SETTINGS)) {
      const value = flags[flag as keyof typeof SETTINGS];
      if (value !== undefined) settings[setting] = value;
    }
    const config = configure(settings);
    let runnel: Awaited<ReturnType<typeof startRunnel>>;
    try {
      runnel = await startRunnel(config);
    } catch (e) {
      throw new CliError(e instanceof StartupError ? e.message : `failed to start: ${(e as Error).message}`);
    }
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
  },
};

/**
 * A bad flag value is a usage mistake (exit 2); a bad environment variable is a configuration
 * one (exit 1). The flags are checked on their own first, so the line names the flag's fault.
 */
function configure(settings: Partial<Record<SettingName, string>>) {
  try {
    loadConfig(settings, {});
  } catch (e) {
    if (e instanceof ConfigError) throw new UsageError(e.message);
    throw e;
  }
  try {
    return loadConfig(settings);
  } catch (e) {
    if (e instanceof ConfigError) throw new CliError(e.message);
    throw e;
  }
}
