#!/usr/bin/env node
// First: sizes libuv's thread pool before anything uses it.
import "../src/core/thread-pool.js";
import { main } from "../src/cli.js";

process.exitCode = await main(process.argv.slice(2));
