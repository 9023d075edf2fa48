/**
 * The Runnel side of bench/cep.ts's throughput comparison, run by it as a child pinned to one core
 * (`taskset -c 1`) with the same heap limit as the JVM, so V8's GC and compiler threads share that
 * core as the JVM's do. Not a benchmark of its own: bench/run.ts runs bench/*.ts only.
 *   node --import tsx bench/lib/cep-runnel.ts <seed|sequence> <events> <rounds>
 * Rounds start from an empty operator; no gc() is forced between them (FlinkCEP gets none either).
 * After the timed rounds, one more run measures the V8 heap per partial match, with gc() around it.
 * Prints one JSON line.
 */
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { CepOperator } from "../../src/cep/operator.js";
import { compileRule } from "../../src/cep/rule/compile.js";
import { validateRuleSpec } from "../../src/cep/rule/spec.js";
import { linesHash } from "../report.js";
import { matchLine, WORKLOADS, type Workload, type WorkloadName, workload } from "./cep-workload.js";

const [name, eventsArg, roundsArg] = process.argv.slice(2);
if (!WORKLOADS.includes(name as WorkloadName)) throw new Error(`workload ${name}: one of ${WORKLOADS.join(", ")}`);
const w = workload(name as WorkloadName, Number(eventsArg));
const rounds = Number(roundsArg);

function run(w: Workload, lines: string[]): CepOperator {
  const op = new CepOperator(compileRule(validateRuleSpec(w.rule)), {
    onMatch: (m) => {
      lines.push(matchLine(m.key, m.match.values()));
    },
  });
  const { keys, ts, values } = w;
  for (let i = 0; i < keys.length; i++) op.process(keys[i] as string, ts[i] as number, values[i] as never);
  op.advanceWatermark(Number.POSITIVE_INFINITY);
  return op;
}

const roundSeconds: number[] = [];
const cpuSeconds: number[] = [];
let lines: string[] = [];
for (let r = 0; r < rounds; r++) {
  lines = [];
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  run(w, lines);
  roundSeconds.push((performance.now() - t0) / 1000);
  const cpu = process.cpuUsage(cpu0);
  cpuSeconds.push((cpu.user + cpu.system) / 1e6);
}

// Memory, outside the timed rounds: the partial matches held after a run, excluding the end-of-input
// watermark that would release them.
setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;
gc();
const heapBefore = process.memoryUsage().heapUsed;
const op = new CepOperator(compileRule(validateRuleSpec(w.rule)), { onMatch: () => {} });
for (let i = 0; i < w.keys.length; i++) op.process(w.keys[i] as string, w.ts[i] as number, w.values[i] as never);
gc();
const heapBytes = process.memoryUsage().heapUsed - heapBefore;

console.log(
  JSON.stringify({
    roundSeconds,
    cpuSeconds,
    matches: lines.length,
    sha256: linesHash(lines),
    keysAtEnd: op.activeKeys,
    partialMatchesAtEnd: op.partialMatchCount(),
    heapBytes,
  }),
);
