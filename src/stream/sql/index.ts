export { type CompiledPipeline, compilePipeline } from "./compile.js";
export { SqlEvalError, SqlTimestamp } from "./values.js";
