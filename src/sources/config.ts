/**
 * The sources config file (YAML or JSON) and the admin API's source bodies: one JSON Schema per
 * source type, checked before anything starts, with errors naming the field
 * (`sources[1].topics[0].stream: must be 1–64 of [a-z0-9_]…`).
 */
import { readFile } from "node:fs/promises";
import { Ajv, type ErrorObject, type ValidateFunction } from "ajv";
import { parse as parseYaml } from "yaml";
import { checkStreamName } from "../catalog/stream-spec.js";
import { parseDuration } from "../config/units.js";
import { RunnelError } from "../core/errors.js";
import type { SourceSpec } from "./types.js";

const NAME = "^[a-z][a-z0-9_-]{0,63}$";
const common = {
  name: { type: "string", pattern: NAME },
  type: { type: "string" },
  userId: { type: "string", minLength: 1, maxLength: 256 },
} as const;

const SCHEMAS = {
  mqtt: {
    type: "object",
    additionalProperties: false,
    required: ["name", "type", "url", "topics"],
    properties: {
      ...common,
      url: { type: "string", pattern: "^(mqtts?|wss?|tcp)://" },
      protocolVersion: { enum: [4, 5] },
      clientId: { type: "string", minLength: 1 },
      username: { type: "string" },
      password: { type: "string" },
      qos: { enum: [0, 1] },
      topics: {
        type: "array",
        minItems: 1,
        items: {
          type: "object",
          additionalProperties: false,
          required: ["filter", "stream"],
          properties: {
            filter: { type: "string", minLength: 1 },
            stream: { type: "string" },
            fields: { type: "object", additionalProperties: { type: "integer", minimum: 0 } },
          },
        },
      },
    },
  },
  file: {
    type: "object",
    additionalProperties: false,
    required: ["name", "type", "path", "stream"],
    properties: {
      ...common,
      path: { type: "string", minLength: 1 },
      stream: { type: "string" },
      format: { enum: ["ndjson", "lines"] },
      parser: {
        oneOf: [
          { enum: ["json", "logfmt"] },
          {
            type: "object",
            additionalProperties: false,
            required: ["regex"],
            properties: { regex: { type: "string", minLength: 1 } },
          },
        ],
      },
      startAt: { enum: ["beginning", "end"] },
      pollInterval: { type: "string" },
    },
  },
  kafka: {
    type: "object",
    additionalProperties: false,
    required: ["name", "type", "brokers", "topic", "stream"],
    properties: {
      ...common,
      brokers: { type: "array", minItems: 1, items: { type: "string", pattern: "^[^\\s:]+:\\d+$" } },
      topic: { type: "string", minLength: 1 },
      stream: { type: "string" },
      group: { type: "string", minLength: 1 },
      startAt: { enum: ["earliest", "latest"] },
    },
  },
} as const;

const ajv = new Ajv({ allErrors: false, strict: false });
const validators = Object.fromEntries(
  Object.entries(SCHEMAS).map(([type, schema]) => [type, ajv.compile(schema)]),
) as Record<keyof typeof SCHEMAS, ValidateFunction>;

/** Validates one source spec; `at` names it in messages (`sources[2]`, or `body` for the API). */
export function parseSourceSpec(input: unknown, at: string): SourceSpec {
  if (typeof input !== "object" || input === null || Array.isArray(input)) {
    throw invalid(`${at} must be an object`);
  }
  const type = (input as { type?: unknown }).type;
  if (typeof type !== "string" || !(type in validators)) {
    throw invalid(`${at}.type must be one of ${Object.keys(SCHEMAS).join(", ")}, got ${JSON.stringify(type)}`);
  }
  const validate = validators[type as keyof typeof SCHEMAS];
  if (!validate(input)) throw invalid(describe(at, validate.errors![0]!));
  const spec = input as SourceSpec;
  const streams =
    spec.type === "mqtt"
      ? spec.topics.map((t, i) => [`${at}.topics[${i}].stream`, t.stream])
      : [[`${at}.stream`, spec.stream]];
  for (const [field, stream] of streams) {
    checkStreamName(stream, field);
    // The dead-letter stream's name must fit the same 64 characters.
    if (stream!.length > 52) throw invalid(`${field} must be at most 52 characters (room for "_dead_letter")`);
  }
  if (spec.type === "file") {
    if (spec.pollInterval !== undefined && parseDuration(spec.pollInterval) === undefined) {
      throw invalid(`${at}.pollInterval must be a duration such as 250ms or 1s`);
    }
    if (spec.parser !== undefined && typeof spec.parser === "object") {
      try {
        new RegExp(spec.parser.regex);
      } catch (e) {
        throw invalid(`${at}.parser.regex is not a valid regular expression: ${(e as Error).message}`);
      }
    }
    if (spec.format !== "lines" && spec.parser !== undefined) {
      throw invalid(`${at}.parser needs format "lines" (ndjson lines are always JSON)`);
    }
  }
  return spec;
}

/** Parses a whole sources file's text: `{ sources: [...] }` or a bare list. */
export function parseSourcesText(text: string, file: string): SourceSpec[] {
  let doc: unknown;
  try {
    doc = file.endsWith(".json") ? JSON.parse(text) : parseYaml(text);
  } catch (e) {
    throw invalid(`${file}: not valid ${file.endsWith(".json") ? "JSON" : "YAML"}: ${(e as Error).message}`);
  }
  const list = Array.isArray(doc) ? doc : (doc as { sources?: unknown } | null)?.sources;
  if (!Array.isArray(list)) throw invalid(`${file}: expected a "sources" list`);
  const specs = list.map((s, i) => parseSourceSpec(s, `sources[${i}]`));
  const seen = new Set<string>();
  for (const [i, s] of specs.entries()) {
    if (seen.has(s.name)) throw invalid(`sources[${i}].name "${s.name}" is used twice`);
    seen.add(s.name);
  }
  return specs;
}

export async function loadSourcesFile(file: string): Promise<SourceSpec[]> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (e) {
    throw invalid(`cannot read the sources file ${file}: ${(e as Error).message}`);
  }
  try {
    return parseSourcesText(text, file);
  } catch (e) {
    if (e instanceof RunnelError && !e.message.startsWith(file)) throw invalid(`${file}: ${e.message}`);
    throw e;
  }
}

function describe(at: string, error: ErrorObject): string {
  const where = at + error.instancePath.replace(/\/(\d+)/g, "[$1]").replaceAll("/", ".");
  const params = error.params as Record<string, unknown>;
  if (error.keyword === "additionalProperties") return `${where}: unknown field "${String(params.additionalProperty)}"`;
  if (error.keyword === "required") return `${where}.${String(params.missingProperty)} is required`;
  if (error.keyword === "enum") {
    return `${where} must be one of ${(params.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(", ")}`;
  }
  if (error.keyword === "pattern" && where.endsWith(".name")) {
    return `${where} must be 1–64 of [a-z0-9_-], starting with a letter`;
  }
  return `${where} ${error.message ?? "is invalid"}`;
}

function invalid(message: string): RunnelError {
  return new RunnelError("invalid_input", message);
}
