/** `runnel start`: runs Runnel in this process until SIGINT or SIGTERM. */
import { ConfigError, DEFAULTS, ENV_NAMES, FLAG_NAMES, loadConfig, type SettingName } from "../config/config.js";
import type { startRunnel } from "../server.js";
import type { Command, Flag } from "./args.js";
import { CliError, UsageError } from "./errors.js";

type FlagName = (typeof FLAG_NAMES)[keyof typeof FLAG_NAMES];
type StartFlags = { readonly [K in FlagName]: Flag };

/** The value's placeholder and meaning of each flag; its name, variable and default come from src/config/config.ts. */
const DESCRIPTIONS: { readonly [S in keyof typeof FLAG_NAMES]: readonly [string, string] } = {
  dataDir: ["DIR", "where the log, analytics and control data live"],
  port: ["PORT", "HTTP port (0 picks a free one)"],
  host: ["ADDR", "bind address"],
  databaseUrl: ["URL", "a postgres:// URL for the control plane (default: embedded PGlite)"],
  kafkaBrokers: ["HOSTS", "host:port,… of Apache Kafka as the log (default: the local log)"],
  logLevel: ["LEVEL", "fatal, error, warn, info, debug or silent"],
  maxBodyBytes: ["SIZE", "largest request body"],
  maxEventBytes: ["SIZE", "largest single event"],
  maxJsonDepth: ["N", "deepest nesting of any JSON body or event, 1 to 1000"],
  maxJsonFields: ["N", "most fields in one JSON object, 1 to 100000"],
  tokenTtl: ["DURATION", "lifetime of login tokens"],
  defaultPartitions: ["N", "partitions of a new stream"],
  sourcesFile: ["FILE", "YAML or JSON file of MQTT, Kafka topic and file sources"],
};

const SETTINGS = Object.entries(FLAG_NAMES) as [keyof typeof FLAG_NAMES, FlagName][];

const FLAGS = Object.fromEntries(
  SETTINGS.map(([setting, flag]) => {
    const [value, help] = DESCRIPTIONS[setting];
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
    for (const [setting, flag] of SETTINGS) {
      const value = flags[flag];
      if (value !== undefined) settings[setting] = value;
    }
    const config = configure(settings);
    // Loaded here, not at the top: the server's modules (DuckDB, PGlite, Kafka, the API) take about
    // two seconds to load, which every other command (produce, tail, query, import, --help) would pay.
    const { StartupError, startRunnel: start } = await import("../server.js");
    let runnel: Awaited<ReturnType<typeof startRunnel>>;
    try {
      runnel = await start(config);
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
