/**
 * The command line's one parser: node:util's parseArgs over the flags a command declares. Any
 * mistake is a UsageError naming the flag (exit 2); values are checked by the command that uses them.
 *
 * @example
 *   const line = parseCommandLine({ name: "query", operands: ['"<sql>"'], flags: { format: { value: "FORMAT", help: "…" } } },
 *     ["SELECT 1", "--format=csv"]);
 *   // line.operands: ["SELECT 1"], line.flags.format: "csv", line.help: false
 */
import { parseArgs } from "node:util";
import { UsageError } from "./errors.js";

export interface Flag {
  /** The value's placeholder in help (`DIR`, `N`); absent for a switch, which takes no value. */
  readonly value?: string;
  readonly help: string;
}

export type Flags = Readonly<Record<string, Flag>>;

export interface CommandSpec<F extends Flags = Flags> {
  readonly name: string;
  /** Operands in order, as help shows them: `<stream>` is required, `[FILE|-]` optional. */
  readonly operands: readonly string[];
  readonly flags: F;
}

export interface CommandLine<F extends Flags = Flags> {
  /** The value of each valued flag given (the last one wins when a flag is repeated). */
  readonly flags: { readonly [K in keyof F]?: string };
  /** The switches given, `help` included. */
  readonly switches: ReadonlySet<string>;
  readonly operands: readonly string[];
  /** `-h` or `--help`: every command takes it; operands are not checked then. */
  readonly help: boolean;
}

type Options = Record<string, { type: "string" | "boolean"; short?: string }>;

export function parseCommandLine<F extends Flags>(spec: CommandSpec<F>, args: readonly string[]): CommandLine<F> {
  const options: Options = { help: { type: "boolean", short: "h" } };
  for (const [name, flag] of Object.entries(spec.flags)) {
    options[name] = { type: flag.value === undefined ? "boolean" : "string" };
  }
  // Not strict: the tokens let this name the flag in its own words; parseArgs's errors are paragraphs.
  const { tokens } = parseArgs({ args: [...args], options, strict: false, allowPositionals: true, tokens: true });
  const flags: Record<string, string> = {};
  const switches = new Set<string>();
  const operands: string[] = [];
  for (const token of tokens) {
    if (token.kind === "positional") {
      operands.push(token.value);
      continue;
    }
    if (token.kind !== "option") continue;
    const option = Object.hasOwn(options, token.name) ? options[token.name] : undefined;
    if (option === undefined) throw new UsageError(`unknown option "${token.rawName}"`);
    if (option.type === "boolean") {
      if (token.inlineValue) throw new UsageError(`option ${token.rawName} takes no value`);
      switches.add(token.name);
      continue;
    }
    // `--port --host x`: the next flag is not the value, though parseArgs would take it as one.
    if (token.value === undefined || (!token.inlineValue && token.value.startsWith("--"))) {
      throw new UsageError(`option ${token.rawName} needs a value`);
    }
    flags[token.name] = token.value;
  }
  const help = switches.has("help");
  if (!help) checkOperands(spec, operands);
  return { flags: flags as CommandLine<F>["flags"], switches, operands, help };
}

function checkOperands(spec: CommandSpec, operands: readonly string[]): void {
  const required = spec.operands.filter((o) => !o.startsWith("["));
  if (operands.length < required.length) {
    throw new UsageError(`${spec.name} needs ${required.slice(operands.length).join(" ")}`);
  }
  if (operands.length > spec.operands.length) {
    throw new UsageError(`unexpected argument "${operands[spec.operands.length]}"`);
  }
}

/** A `runnel` command: its flags and operands, the help that describes them, and what it does. */
export interface Command<F extends Flags = Flags> extends CommandSpec<F> {
  /** One line for `runnel --help`. */
  readonly summary: string;
  /** Paragraphs after the flags in `runnel <command> --help`. */
  readonly details?: string;
  /** Runs the command; resolves to the exit code. */
  run(line: CommandLine<F>): Promise<number>;
}
