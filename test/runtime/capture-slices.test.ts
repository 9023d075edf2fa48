/** Background checkpoint captures share one slice per turn of the event loop, in the order they began. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { setImmediate as nextTurn } from "node:timers/promises";
import { CaptureSlices } from "../../src/runtime/capture-slices.js";

/** A capture that needs `steps` steps, each using up the slice; records its steps in `log`. */
function capture(name: string, steps: number, log: string[]): (deadline: number) => boolean {
  let n = 0;
  return () => {
    log.push(name);
    return ++n >= steps;
  };
}

describe("CaptureSlices", () => {
  it("steps one capture per turn until done, then the next; a throwing one rejects alone", async () => {
    const slices = new CaptureSlices();
    const log: string[] = [];
    const turns: string[][] = [];
    let stop = false;
    // Records which steps ran in each turn of the event loop.
    const watch = (async () => {
      while (!stop) {
        turns.push(log.splice(0));
        await nextTurn();
      }
    })();
    const a = slices.run(capture("a", 3, log));
    const b = slices.run(capture("b", 2, log));
    const bad = slices.run(() => {
      throw new Error("broken capture");
    });
    const c = slices.run(capture("c", 1, log));
    await a;
    await b;
    await assert.rejects(bad, /broken capture/);
    await c;
    stop = true;
    await watch;
    turns.push(log.splice(0));
    const steps = turns.filter((t) => t.length > 0);
    assert.deepEqual(steps.flat(), ["a", "a", "a", "b", "b", "c"], "in the order they began");
    for (const t of steps) {
      // A step that did not finish ends the turn: one unfinished step per turn, at most.
      assert.ok(t.length <= 2, `one slice per turn (${t.join(",")})`);
    }
  });
});
