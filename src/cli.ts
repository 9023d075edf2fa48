/**
 * `runnel <command> [flags]`, `runnel <command> --help`, `runnel --help`, `runnel --version`.
 * Flags are parsed in one place (src/cli/args.ts); a failure is one line on stderr naming what was
 * wrong, with exit code 1, or 2 for a usage mistake (an unknown flag or command, a bad value).
 */
import { type Command, type CommandLine, type CommandSpec, parseCommandLine } from "./cli/args.js";
import { CliError, UsageError } from "./cli/errors.js";
import { commandHelp, overview } from "./cli/help.js";
import { importCommand } from "./cli/import.js";
import { produceCommand } from "./cli/produce.js";
import { queryCommand } from "./cli/query.js";
import { startCommand } from "./cli/start.js";
import { tailCommand } from "./cli/tail.js";
import { packageVersion } from "./cli/version.js";

const COMMANDS: readonly Command[] = [startCommand, produceCommand, tailCommand, queryCommand, importCommand];

/** What `runnel` takes before (or instead of) a command. */
const TOP: CommandSpec = { name: "runnel", operands: ["[command]"], flags: { version: { help: "print the version" } } };

export async function main(argv: readonly string[]): Promise<number> {
  const [first, ...rest] = argv;
  const command = COMMANDS.find((c) => c.name === first);
  if (command !== undefined) return run(command, rest);
  return fail("runnel", () => {
    if (first === undefined) throw new UsageError("a command is missing");
    if (first === "help") return helpFor(rest[0]);
    if (!first.startsWith("-")) throw new UsageError(`unknown command "${first}"`);
    const line = parseCommandLine(TOP, argv);
    if (line.switches.has("version")) {
      process.stdout.write(`${packageVersion()}\n`);
      return 0;
    }
    return helpFor(line.operands[0]);
  });
}

async function run(command: Command, args: readonly string[]): Promise<number> {
  return fail(`runnel ${command.name}`, () => {
    const line: CommandLine = parseCommandLine(command, args);
    if (!line.help) return command.run(line);
    process.stdout.write(commandHelp(command));
    return 0;
  });
}

/** `runnel --help [command]` and `runnel help [command]`. */
function helpFor(name: string | undefined): number {
  if (name === undefined) {
    process.stdout.write(overview(COMMANDS));
    return 0;
  }
  const command = COMMANDS.find((c) => c.name === name);
  if (command === undefined) throw new UsageError(`unknown command "${name}"`);
  process.stdout.write(commandHelp(command));
  return 0;
}

/** Runs `body`, turning any failure into one line on stderr prefixed with `who`, and an exit code. */
async function fail(who: string, body: () => number | Promise<number>): Promise<number> {
  try {
    return await body();
  } catch (e) {
    const hint = e instanceof UsageError ? ` (see ${who} --help)` : "";
    process.stderr.write(`${who}: ${(e as Error).message}${hint}\n`);
    return e instanceof CliError ? e.exitCode : 1;
  }
}
