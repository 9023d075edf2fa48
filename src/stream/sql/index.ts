export { type CompiledPipeline, compilePipeline, type StatelessPipeline, type WindowedPipeline } from "./compile.js";
export { SqlEvalError, SqlTimestamp } from "./values.js";
