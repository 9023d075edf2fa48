/** The seed's user_data flow on the embedded defaults (the local log). */
import { seedFlowSuite } from "./seed-flow.scenario.js";

seedFlowSuite("seed flow on the local log", async () => ({}));
