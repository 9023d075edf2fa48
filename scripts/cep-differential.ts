/** Entry point of scripts/cep-differential.sh: runs N cases in batches and reports differences. */
import { compare, generateCases, runOracle, runRunnel } from "../test/cep/differential.js";

const total = Number(process.argv[2] ?? 5000);
const seed = Number(process.argv[3] ?? 1);
const BATCH = 2000;
let diffs = 0;
for (let start = 0; start < total; start += BATCH) {
  const cases = generateCases(seed + start, Math.min(BATCH, total - start));
  const theirs = runOracle(cases);
  for (const c of cases) {
    const diff = compare(runRunnel(c), theirs.get(c.id));
    if (diff === "") continue;
    diffs++;
    if (diffs <= 5) console.log(`seed ${seed + start} case ${JSON.stringify(c)}\n${diff}\n`);
  }
}
console.log(`seed ${seed}: ${total} cases, ${diffs} differ`);
process.exit(diffs === 0 ? 0 : 1);
