/**
 * Offline checks of the Kubernetes manifests in deploy/kubernetes (docs/kubernetes.md): rendering
 * an overlay with `kubectl kustomize`, schema validation with kubernetes-validate (PyPI) and the
 * ServiceMonitor's own schema, and the properties Runnel relies on, each reported as a problem
 * naming the object and field. Functions take documents, so a test can feed a broken one.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Ajv } from "ajv";
import { parseAllDocuments, stringify } from "yaml";
import { type Config, ENV_NAMES, loadConfig } from "../../src/config/config.js";
import { createMetrics } from "../../src/monitoring/metrics.js";

export const ROOT = join(import.meta.dirname, "..", "..");
export const KUBERNETES_DIR = join(ROOT, "deploy", "kubernetes");

/** One rendered object; fields are read through the typed views below after checking `kind`. */
export interface Manifest {
  readonly apiVersion: string;
  readonly kind: string;
  readonly metadata: { readonly name: string; readonly namespace?: string; readonly labels?: Labels };
  readonly [field: string]: unknown;
}

type Labels = Readonly<Record<string, string>>;

interface HttpProbe {
  readonly httpGet?: { readonly path?: string; readonly port?: string | number };
}

interface EnvVar {
  readonly name: string;
  readonly value?: string;
  readonly valueFrom?: {
    readonly fieldRef?: { readonly fieldPath: string };
    readonly secretKeyRef?: { readonly name: string; readonly key: string; readonly optional?: boolean };
    readonly configMapKeyRef?: { readonly name: string; readonly key: string };
  };
}

interface Container {
  readonly name: string;
  readonly image?: string;
  readonly ports?: readonly { readonly name?: string; readonly containerPort: number }[];
  readonly env?: readonly EnvVar[];
  readonly envFrom?: readonly { readonly configMapRef?: { readonly name: string } }[];
  readonly startupProbe?: HttpProbe;
  readonly livenessProbe?: HttpProbe;
  readonly readinessProbe?: HttpProbe;
  readonly lifecycle?: { readonly preStop?: { readonly exec?: { readonly command?: readonly string[] } } };
  readonly resources?: {
    readonly requests?: Readonly<Record<string, string>>;
    readonly limits?: Readonly<Record<string, string>>;
  };
  readonly securityContext?: {
    readonly allowPrivilegeEscalation?: boolean;
    readonly readOnlyRootFilesystem?: boolean;
    readonly privileged?: boolean;
    readonly runAsNonRoot?: boolean;
    readonly capabilities?: { readonly drop?: readonly string[]; readonly add?: readonly string[] };
  };
  readonly volumeMounts?: readonly { readonly name: string; readonly mountPath: string }[];
}

interface PodSpec {
  readonly containers: readonly Container[];
  readonly terminationGracePeriodSeconds?: number;
  readonly enableServiceLinks?: boolean;
  readonly automountServiceAccountToken?: boolean;
  readonly serviceAccountName?: string;
  readonly securityContext?: {
    readonly runAsNonRoot?: boolean;
    readonly runAsUser?: number;
    readonly seccompProfile?: { readonly type: string };
  };
  readonly affinity?: {
    readonly podAntiAffinity?: {
      readonly requiredDuringSchedulingIgnoredDuringExecution?: readonly {
        readonly topologyKey: string;
        readonly labelSelector?: { readonly matchLabels?: Labels };
      }[];
    };
  };
  readonly volumes?: readonly ({ readonly name: string } & Readonly<Record<string, unknown>>)[];
  readonly hostNetwork?: boolean;
  readonly hostPID?: boolean;
  readonly hostIPC?: boolean;
}

/** Volume types the "restricted" Pod Security Standard allows. */
const RESTRICTED_VOLUME_TYPES = new Set([
  "configMap",
  "csi",
  "downwardAPI",
  "emptyDir",
  "ephemeral",
  "persistentVolumeClaim",
  "projected",
  "secret",
]);

interface StatefulSet extends Manifest {
  readonly spec: {
    readonly replicas?: number;
    readonly serviceName: string;
    readonly selector: { readonly matchLabels?: Labels };
    readonly template: { readonly metadata: { readonly labels?: Labels }; readonly spec: PodSpec };
    readonly volumeClaimTemplates?: readonly { readonly metadata: { readonly name: string } }[];
  };
}

interface Service extends Manifest {
  readonly spec: {
    readonly clusterIP?: string;
    readonly publishNotReadyAddresses?: boolean;
    readonly selector?: Labels;
    readonly ports: readonly { readonly name?: string; readonly port: number; readonly targetPort?: string | number }[];
  };
}

interface PodDisruptionBudget extends Manifest {
  readonly spec: {
    readonly minAvailable?: number | string;
    readonly maxUnavailable?: number | string;
    readonly selector?: { readonly matchLabels?: Labels };
  };
}

interface ServiceMonitor extends Manifest {
  readonly spec: {
    readonly selector: { readonly matchLabels?: Labels };
    readonly endpoints: readonly {
      readonly port?: string;
      readonly path?: string;
      readonly relabelings?: readonly {
        readonly targetLabel?: string;
        readonly replacement?: string;
        readonly sourceLabels?: readonly string[];
      }[];
    }[];
  };
}

interface HorizontalPodAutoscaler extends Manifest {
  readonly spec: {
    readonly scaleTargetRef: { readonly kind: string; readonly name: string };
    readonly minReplicas?: number;
    readonly maxReplicas: number;
    readonly metrics?: readonly {
      readonly type: string;
      readonly external?: { readonly metric: { readonly name: string } };
      readonly pods?: { readonly metric: { readonly name: string } };
    }[];
  };
}

/** `kubectl kustomize DIR`: the overlay's objects as YAML text. */
export function render(dir: string): string {
  try {
    return execFileSync("kubectl", ["kustomize", dir], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") {
      throw new Error("kubectl is not on PATH: the Kubernetes manifests are rendered with `kubectl kustomize`");
    }
    throw new Error(`kubectl kustomize ${dir} failed: ${(e as { stderr?: string }).stderr ?? (e as Error).message}`);
  }
}

export function parseManifests(text: string): Manifest[] {
  return parseAllDocuments(text).map((doc, i) => {
    if (doc.errors.length > 0) throw new Error(`document ${i}: ${doc.errors[0]!.message}`);
    return doc.toJS() as Manifest;
  });
}

/** The path of the kubernetes-validate command, installed on demand by scripts/kubernetes-validate.sh. */
export function kubernetesValidate(): string {
  return execFileSync("bash", [join(ROOT, "scripts", "kubernetes-validate.sh")], {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "inherit"],
  }).trim();
}

export interface ValidationResult {
  /** One line per object that did not validate: "statefulset/runnel: spec.replicas: …". */
  readonly errors: string[];
  /** Kinds the validator has no schema for ("monitoring.coreos.com/v1 ServiceMonitor"), so did not check. */
  readonly skipped: string[];
  readonly exitCode: number | null;
}

/**
 * Validates `docs` against the Kubernetes `version` schemas in strict mode (unknown fields are
 * errors). Kinds without a bundled schema are not errors for the validator: they come back in
 * `skipped`, for the caller to refuse or check another way.
 */
export function validate(bin: string, docs: readonly Manifest[], version: string): ValidationResult {
  const dir = mkdtempSync(join(tmpdir(), "runnel-k8s-"));
  try {
    const file = join(dir, "manifests.yaml");
    writeFileSync(file, docs.map((d) => stringify(d)).join("---\n"));
    const run = spawnSync(bin, ["--strict", "--kubernetes-version", version, file], { encoding: "utf8" });
    if (run.error !== undefined) throw run.error;
    const lines = `${run.stdout}\n${run.stderr}`.split("\n");
    const errors: string[] = [];
    const skipped: string[] = [];
    for (const line of lines) {
      const error = / did not validate for resource (\S+) against version [\d.]+: (.*)$/.exec(line);
      if (error !== null) errors.push(`${error[1]}: ${error[2]}`);
      const skip = /Couldn't find schema for kind (\S+) with api version (\S+)/.exec(line);
      if (skip !== null) skipped.push(`${skip[2]} ${skip[1]}`);
      if (/^(FATAL|ERROR) /.test(line) && error === null) errors.push(line);
    }
    return { errors, skipped, exitCode: run.status };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const SERVICE_MONITOR_SCHEMA = JSON.parse(
  readFileSync(join(import.meta.dirname, "servicemonitor.schema.json"), "utf8"),
);
const checkServiceMonitorSchema = new Ajv({ allErrors: true, strict: true }).compile(SERVICE_MONITOR_SCHEMA);

/** Problems of a ServiceMonitor against test/deploy/servicemonitor.schema.json. */
export function serviceMonitorSchemaProblems(doc: Manifest): string[] {
  const name = doc.metadata?.name;
  if (checkServiceMonitorSchema(doc)) return [];
  return (checkServiceMonitorSchema.errors ?? []).map((e) => `servicemonitor/${name}${e.instancePath}: ${e.message}`);
}

/** What an overlay is meant to deploy. */
export interface Expectations {
  readonly namespace: string;
  /** The StatefulSet's replicas; undefined where an autoscaler owns the count. */
  readonly replicas: number | undefined;
  readonly autoscaled: boolean;
  /** Instances must be spread one per node. */
  readonly antiAffinity: boolean;
}

/** Every RUNNEL_ environment variable Runnel reads (src/config/config.ts). */
const SETTINGS = new Set<string>(Object.values(ENV_NAMES));

/** Settings that carry credentials: referenced from a Secret, never written in a manifest. */
const SECRET_SETTINGS = [ENV_NAMES.databaseUrl, ENV_NAMES.tokenSecret, ENV_NAMES.adminPassword];

/**
 * Longest clean shutdown the grace period must leave room for after the preStop pause: Runnel
 * stops each component within 10 s (src/core/shutdown.ts) and an idle instance on Kafka and
 * PostgreSQL stopped in 0.12–0.14 s (docs/kubernetes.md); a minute covers a loaded one with margin.
 */
export const SHUTDOWN_ALLOWANCE_S = 60;

/** The job name deploy/prometheus/rules select Runnel's targets by. */
function ruleJobNames(): Set<string> {
  const rules = readFileSync(join(ROOT, "deploy", "prometheus", "rules", "runnel.yml"), "utf8");
  return new Set([...rules.matchAll(/job="([^"]+)"/g)].map((m) => m[1]!));
}

function matches(selector: Labels | undefined, labels: Labels | undefined): boolean {
  if (selector === undefined || Object.keys(selector).length === 0) return false;
  return Object.entries(selector).every(([k, v]) => labels?.[k] === v);
}

/** Kubernetes' quantity ("512Mi", "2", "500m") as a number, for comparing requests with limits. */
function quantity(text: string | undefined): number {
  if (text === undefined) return Number.NaN;
  const m = /^(\d+(?:\.\d+)?)(m|Ki|Mi|Gi|Ti|k|M|G|T)?$/.exec(text);
  if (m === null) return Number.NaN;
  const scale: Record<string, number> = {
    m: 1e-3,
    k: 1e3,
    M: 1e6,
    G: 1e9,
    T: 1e12,
    Ki: 2 ** 10,
    Mi: 2 ** 20,
    Gi: 2 ** 30,
    Ti: 2 ** 40,
  };
  return Number(m[1]) * (m[2] === undefined ? 1 : scale[m[2]]!);
}

/** `$(NAME)` references of an env value expanded from `vars`, as the kubelet does. */
function expand(value: string, vars: Readonly<Record<string, string>>): string {
  return value.replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (whole, name: string) => vars[name] ?? whole);
}

/** A container's environment as the kubelet builds it, for the StatefulSet's pod `podName`. */
export interface PodEnvironment {
  /** Variables with a value: the ConfigMaps' keys, literal values with `$(NAME)` expanded, the pod's fields. */
  readonly env: Record<string, string>;
  /** Variables read from Secrets, which the manifests only reference. */
  readonly secrets: ReadonlyMap<string, { readonly name: string; readonly key: string; readonly optional?: boolean }>;
  /** Variables (or `envFrom` ConfigMaps) whose source is not in the rendered objects. */
  readonly unresolved: readonly string[];
}

export function podEnvironment(docs: readonly Manifest[], podName: string, namespace: string): PodEnvironment {
  const sts = docs.find((d) => d.kind === "StatefulSet") as StatefulSet;
  const c = sts.spec.template.spec.containers[0]!;
  const configMaps = new Map(
    docs.filter((d) => d.kind === "ConfigMap").map((m) => [m.metadata.name, (m.data ?? {}) as Record<string, string>]),
  );
  const env: Record<string, string> = {};
  const secrets = new Map<string, { name: string; key: string; optional?: boolean }>();
  const unresolved: string[] = [];
  for (const from of c.envFrom ?? []) {
    const data = from.configMapRef === undefined ? undefined : configMaps.get(from.configMapRef.name);
    if (data === undefined) unresolved.push(`envFrom ${from.configMapRef?.name}`);
    else Object.assign(env, data);
  }
  const fields: Record<string, string> = { "metadata.name": podName, "metadata.namespace": namespace };
  for (const v of c.env ?? []) {
    const field = v.valueFrom?.fieldRef?.fieldPath;
    const secret = v.valueFrom?.secretKeyRef;
    if (v.value !== undefined) env[v.name] = expand(v.value, env);
    else if (field !== undefined && fields[field] !== undefined) env[v.name] = fields[field];
    else if (secret !== undefined) secrets.set(v.name, secret);
    else unresolved.push(v.name);
  }
  return { env, secrets, unresolved };
}

/**
 * The properties Runnel's deployment relies on, as problems naming the object and field (none
 * when all hold). `docs` is one rendered overlay.
 */
export function manifestProblems(docs: readonly Manifest[], expect: Expectations): string[] {
  const problems: string[] = [];
  const problem = (where: string, message: string): void => {
    problems.push(`${where}: ${message}`);
  };
  const ofKind = <T extends Manifest>(kind: string): T[] => docs.filter((d) => d.kind === kind) as T[];
  const one = <T extends Manifest>(kind: string): T | undefined => {
    const found = ofKind<T>(kind);
    if (found.length !== 1) problem(kind, `expected exactly one, found ${found.length}`);
    return found[0];
  };

  if (docs.some((d) => d.kind === "Secret")) {
    problem("Secret", "credentials are created by the platform team, never rendered from the repository");
  }
  for (const d of docs) {
    if (d.kind !== "Namespace" && d.metadata.namespace !== expect.namespace) {
      problem(`${d.kind}/${d.metadata.name}`, `in namespace ${d.metadata.namespace}, expected ${expect.namespace}`);
    }
  }

  const sts = one<StatefulSet>("StatefulSet");
  if (sts === undefined) return problems;
  const at = `statefulset/${sts.metadata.name}`;
  const pod = sts.spec.template.spec;
  const podLabels = sts.spec.template.metadata.labels;
  if (!matches(sts.spec.selector.matchLabels, podLabels)) problem(at, "spec.selector does not select its own pods");

  if (expect.autoscaled) {
    if (sts.spec.replicas !== undefined) problem(at, "spec.replicas is set, but the autoscaler owns the count");
  } else if (sts.spec.replicas !== expect.replicas) {
    problem(at, `spec.replicas is ${sts.spec.replicas}, expected ${expect.replicas}`);
  }

  if (pod.containers.length !== 1) problem(at, `expected one container, found ${pod.containers.length}`);
  const c = pod.containers[0]!;
  const cat = `${at} container ${c.name}`;
  const http = c.ports?.find((p) => p.name === "http");
  const version = (JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { version: string }).version;
  if (!c.image?.endsWith(`:${version}`)) problem(cat, `image ${c.image} is not this repository's version ${version}`);
  if (http === undefined) problem(cat, "no port named http");

  // Probes: alive is /healthz, ready (tasks restored) is /readyz, both on the API port.
  const probes: [string, HttpProbe | undefined, string][] = [
    ["startupProbe", c.startupProbe, "/healthz"],
    ["livenessProbe", c.livenessProbe, "/healthz"],
    ["readinessProbe", c.readinessProbe, "/readyz"],
  ];
  for (const [name, probe, path] of probes) {
    if (probe?.httpGet?.path !== path) problem(cat, `${name} must GET ${path}, has ${probe?.httpGet?.path}`);
    else if (probe.httpGet.port !== "http" && probe.httpGet.port !== http?.containerPort) {
      problem(cat, `${name} is not on the http port`);
    }
  }

  // Shutdown: a preStop pause, then SIGTERM's clean shutdown, all within the grace period.
  const preStop = c.lifecycle?.preStop?.exec?.command;
  const pause = preStop?.[0] === "sleep" ? Number(preStop[1]) : Number.NaN;
  if (!(pause > 0)) problem(cat, "lifecycle.preStop must pause (sleep N) while the pod leaves the endpoints");
  const grace = pod.terminationGracePeriodSeconds ?? 30;
  if (!(grace >= (pause || 0) + SHUTDOWN_ALLOWANCE_S)) {
    problem(
      at,
      `terminationGracePeriodSeconds ${grace} leaves less than ${SHUTDOWN_ALLOWANCE_S} s after the preStop pause`,
    );
  }

  for (const resource of ["cpu", "memory"]) {
    const request = quantity(c.resources?.requests?.[resource]);
    const limit = quantity(c.resources?.limits?.[resource]);
    if (Number.isNaN(request)) problem(cat, `resources.requests.${resource} missing`);
    if (Number.isNaN(limit)) problem(cat, `resources.limits.${resource} missing`);
    if (request > limit) problem(cat, `resources.requests.${resource} is above its limit`);
  }

  // Security: non-root, nothing writable but the mounted volumes, no capabilities, no API token.
  const psc = pod.securityContext;
  if (psc?.runAsNonRoot !== true) problem(at, "securityContext.runAsNonRoot must be true");
  if (psc?.runAsUser === 0) problem(at, "securityContext.runAsUser is root");
  if (psc?.seccompProfile?.type !== "RuntimeDefault")
    problem(at, "securityContext.seccompProfile must be RuntimeDefault");
  const csc = c.securityContext;
  if (csc?.readOnlyRootFilesystem !== true) problem(cat, "securityContext.readOnlyRootFilesystem must be true");
  if (csc?.allowPrivilegeEscalation !== false) problem(cat, "securityContext.allowPrivilegeEscalation must be false");
  if (csc?.privileged === true) problem(cat, "securityContext.privileged");
  if (!csc?.capabilities?.drop?.includes("ALL")) problem(cat, "securityContext.capabilities.drop must include ALL");
  if ((csc?.capabilities?.add ?? []).length > 0) problem(cat, "securityContext.capabilities.add must be empty");
  if (pod.automountServiceAccountToken !== false) problem(at, "automountServiceAccountToken must be false");
  for (const host of ["hostNetwork", "hostPID", "hostIPC"] as const) {
    if (pod[host] === true) problem(at, `${host} shares the node's namespaces`);
  }
  for (const volume of pod.volumes ?? []) {
    const type = Object.keys(volume).find((k) => k !== "name");
    if (type === undefined || !RESTRICTED_VOLUME_TYPES.has(type)) {
      problem(at, `volume ${volume.name} is a ${type} volume, which the restricted Pod Security Standard refuses`);
    }
  }
  if (pod.enableServiceLinks !== false) {
    problem(at, "enableServiceLinks must be false: a Service named runnel would inject RUNNEL_PORT=tcp://…");
  }

  // Settings: every RUNNEL_ name is one Runnel reads; credentials come from Secrets.
  const pod0 = `${sts.metadata.name}-0`;
  const { env, secrets, unresolved } = podEnvironment(docs, pod0, expect.namespace);
  for (const name of unresolved) problem(cat, `env ${name} comes from something this check cannot resolve`);
  for (const name of [...Object.keys(env), ...secrets.keys()]) {
    if (name.startsWith("RUNNEL_") && !SETTINGS.has(name)) {
      problem(cat, `env ${name} is not a setting of src/config/config.ts (renamed or misspelt?)`);
    }
  }
  for (const name of SECRET_SETTINGS) {
    if (name in env) problem(cat, `env ${name} is written in the manifests: it must come from a Secret`);
    if (name !== ENV_NAMES.adminPassword && !secrets.has(name)) problem(cat, `env ${name} must reference a Secret`);
  }

  // The rendered settings are ones Runnel accepts, and agree with the pod around them.
  const placeholders: Record<string, string> = {
    [ENV_NAMES.databaseUrl]: "postgres://runnel@postgres.example:5432/runnel",
    [ENV_NAMES.tokenSecret]: "x".repeat(32),
    [ENV_NAMES.adminPassword]: "change-me-please",
  };
  for (const name of secrets.keys()) env[name] = placeholders[name] ?? "placeholder";
  let config: Config | undefined;
  try {
    config = loadConfig({}, env);
  } catch (e) {
    problem(cat, `Runnel refuses the rendered settings: ${(e as Error).message}`);
  }
  if (config !== undefined) {
    if (config.port !== http?.containerPort) problem(cat, `${ENV_NAMES.port} ${config.port} is not the http port`);
    if (config.host !== "0.0.0.0") problem(cat, `${ENV_NAMES.host} must be 0.0.0.0 to answer probes and peers`);
    if (config.kafkaBrokers === undefined)
      problem(cat, `${ENV_NAMES.kafkaBrokers} missing: instances share work through Kafka`);
    if (config.checkpointStore !== "database") problem(cat, `${ENV_NAMES.checkpointStore} must be database`);
    const mount = c.volumeMounts?.find((m) => m.mountPath === config.dataDir);
    if (mount === undefined)
      problem(cat, `the data dir ${config.dataDir} is not a mounted volume (the root is read-only)`);
    else if (!sts.spec.volumeClaimTemplates?.some((t) => t.metadata.name === mount.name)) {
      problem(cat, `the data dir's volume ${mount.name} is not a volumeClaimTemplate`);
    }
  }
  if (!c.volumeMounts?.some((m) => m.mountPath === "/tmp"))
    problem(cat, "/tmp is not a mounted volume (the root is read-only)");

  // Cluster identity: the pod's stable name, reachable through the headless Service.
  const services = ofKind<Service>("Service");
  const headless = services.find((s) => s.metadata.name === sts.spec.serviceName);
  if (headless === undefined) problem(at, `spec.serviceName ${sts.spec.serviceName} is not a rendered Service`);
  else {
    if (headless.spec.clusterIP !== "None") problem(`service/${headless.metadata.name}`, "must be headless");
    if (headless.spec.publishNotReadyAddresses !== true) {
      problem(`service/${headless.metadata.name}`, "must publish not-ready addresses (peers reach starting instances)");
    }
  }
  if (config !== undefined && config.cluster.instanceId !== pod0) {
    problem(cat, `${ENV_NAMES.instanceId} resolves to ${config.cluster.instanceId}, expected the pod name ${pod0}`);
  }
  const advertised = `http://${pod0}.${sts.spec.serviceName}.${expect.namespace}.svc:${http?.containerPort}`;
  if (config !== undefined && config.cluster.advertisedUrl !== advertised) {
    problem(cat, `${ENV_NAMES.advertisedUrl} resolves to ${config.cluster.advertisedUrl}, expected ${advertised}`);
  }
  const clients = services.filter((s) => s !== headless);
  if (clients.length !== 1) problem("Service", `expected one client Service, found ${clients.length}`);
  for (const s of services) {
    if (!matches(s.spec.selector, podLabels)) problem(`service/${s.metadata.name}`, "does not select the pods");
    for (const p of s.spec.ports) {
      if (p.targetPort !== "http" && p.targetPort !== http?.containerPort) {
        problem(`service/${s.metadata.name}`, `port ${p.name} does not target the http port`);
      }
    }
  }

  // Disruptions: one budget over the pods, which still lets a drain proceed.
  const pdb = one<PodDisruptionBudget>("PodDisruptionBudget");
  if (pdb !== undefined) {
    const where = `poddisruptionbudget/${pdb.metadata.name}`;
    const { minAvailable, maxUnavailable } = pdb.spec;
    if ((minAvailable === undefined) === (maxUnavailable === undefined)) {
      problem(where, "set exactly one of minAvailable and maxUnavailable");
    }
    if (!matches(pdb.spec.selector?.matchLabels, podLabels)) problem(where, "does not select the pods");
    const floor = expect.autoscaled ? undefined : expect.replicas;
    if (typeof minAvailable === "number" && floor !== undefined && minAvailable >= floor) {
      problem(where, `minAvailable ${minAvailable} of ${floor} instances blocks every node drain`);
    }
  }

  if (expect.antiAffinity) {
    const terms = pod.affinity?.podAntiAffinity?.requiredDuringSchedulingIgnoredDuringExecution ?? [];
    if (
      !terms.some((t) => t.topologyKey === "kubernetes.io/hostname" && matches(t.labelSelector?.matchLabels, podLabels))
    ) {
      problem(at, "instances must be kept on different nodes (required podAntiAffinity on kubernetes.io/hostname)");
    }
  }

  // Metrics: Prometheus scrapes every instance under the job the alert rules select.
  const monitor = one<ServiceMonitor>("ServiceMonitor");
  if (monitor !== undefined && headless !== undefined) {
    const where = `servicemonitor/${monitor.metadata.name}`;
    if (!matches(monitor.spec.selector.matchLabels, headless.metadata.labels)) {
      problem(where, "does not select the headless Service (every instance, ready or not)");
    }
    for (const e of monitor.spec.endpoints) {
      if (!headless.spec.ports.some((p) => p.name === e.port))
        problem(where, `port ${e.port} is not a port of the Service`);
      if (e.path !== "/metrics") problem(where, `path ${e.path}, expected /metrics`);
      const job = e.relabelings?.find((r) => r.targetLabel === "job")?.replacement;
      for (const wanted of ruleJobNames()) {
        if (job !== wanted) problem(where, `job label ${job}, but deploy/prometheus/rules select job="${wanted}"`);
      }
    }
  }

  // Autoscaling: on a metric Runnel exports, never beyond the slots there are to own.
  const hpas = ofKind<HorizontalPodAutoscaler>("HorizontalPodAutoscaler");
  if (expect.autoscaled !== hpas.length > 0)
    problem("HorizontalPodAutoscaler", `expected ${expect.autoscaled ? 1 : 0}, found ${hpas.length}`);
  const slots = config?.cluster.slots ?? Number.NaN;
  const registry = createMetrics().registry;
  for (const hpa of hpas) {
    const where = `horizontalpodautoscaler/${hpa.metadata.name}`;
    if (hpa.spec.scaleTargetRef.kind !== "StatefulSet" || hpa.spec.scaleTargetRef.name !== sts.metadata.name) {
      problem(where, "does not scale the StatefulSet");
    }
    if (hpa.spec.maxReplicas > slots) {
      problem(where, `maxReplicas ${hpa.spec.maxReplicas} is above the ${slots} slots: the extra instances would idle`);
    }
    if ((hpa.spec.minReplicas ?? 1) > hpa.spec.maxReplicas) problem(where, "minReplicas is above maxReplicas");
    for (const m of hpa.spec.metrics ?? []) {
      const name = (m.external ?? m.pods)?.metric.name;
      if (name === undefined || registry.getSingleMetric(name) === undefined) {
        problem(where, `metric ${name} is not exported by src/monitoring/metrics.ts`);
      }
    }
  }
  return problems;
}
