/** The help text of `runnel --help` and `runnel <command> --help`, built from the commands' declarations. */
import type { Command, Flags } from "./args.js";

const HELP_FLAG: Flags = { help: { help: "show this help" } };

export function overview(commands: readonly Command[]): string {
  const width = Math.max(...commands.map((c) => c.name.length));
  return [
    "usage: runnel <command> [flags]",
    "",
    "commands:",
    ...commands.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    "",
    "  runnel <command> --help   the command's flags",
    "  runnel --version          the version",
    "",
  ].join("\n");
}

export function commandHelp(command: Command): string {
  const usage = ["usage: runnel", command.name, ...command.operands, "[flags]"].join(" ");
  const details = command.details === undefined ? [] : [command.details, ""];
  const summary = `${command.summary[0]!.toUpperCase()}${command.summary.slice(1)}.`;
  return [usage, "", summary, "", ...details, "flags:", ...flagLines(command.flags), ""].join("\n");
}

function flagLines(flags: Flags): string[] {
  const all: Flags = { ...flags, ...HELP_FLAG };
  const names = Object.entries(all).map(([name, flag]) => {
    const short = name === "help" ? "-h, " : "";
    return `${short}--${name}${flag.value === undefined ? "" : ` ${flag.value}`}`;
  });
  const width = Math.max(...names.map((n) => n.length));
  return Object.values(all).map((flag, i) => `  ${names[i]!.padEnd(width)}  ${flag.help}`);
}
