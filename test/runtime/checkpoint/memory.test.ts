import { MemoryCheckpointStore } from "../../../src/runtime/checkpoint/memory.js";
import { runCheckpointStoreConformance } from "../checkpoint-store-conformance.js";

runCheckpointStoreConformance("memory", async () => {
  // One store stands for every process: memory is shared by nothing else.
  const store = new MemoryCheckpointStore();
  return { open: async () => store, destroy: () => store.close() };
});
