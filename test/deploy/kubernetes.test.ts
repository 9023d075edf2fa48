/**
 * deploy/kubernetes, checked without a cluster (none runs on this machine): every overlay renders
 * with `kubectl kustomize`, validates against the Kubernetes schemas of each minor version below
 * (kubernetes-validate, strict), its ServiceMonitor against test/deploy/servicemonitor.schema.json,
 * and has the properties Runnel relies on (test/deploy/kubernetes-manifests.ts). The second half
 * feeds broken documents to the same checks, to show each one can fail.
 */
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import {
  type Expectations,
  KUBERNETES_DIR,
  kubernetesValidate,
  type Manifest,
  manifestProblems,
  parseManifests,
  ROOT,
  render,
  serviceMonitorSchemaProblems,
  validate,
} from "./kubernetes-manifests.js";

/**
 * The newest minor kubernetes-validate 1.37 bundles, back to 1.31: the current release, the
 * previous one, and the older ones managed clusters still run. kubectl here is 1.32.
 */
const KUBERNETES_VERSIONS = ["1.31", "1.32", "1.33", "1.34", "1.35", "1.36", "1.37"];

/** The only kind the validator may skip: checked against our own schema instead. */
const CUSTOM_KINDS = ["monitoring.coreos.com/v1 ServiceMonitor"];

const OVERLAYS: Readonly<Record<string, Expectations>> = {
  dev: { namespace: "runnel-dev", replicas: 1, autoscaled: false, antiAffinity: false },
  production: { namespace: "runnel", replicas: 3, autoscaled: false, antiAffinity: true },
  "production-autoscaling": { namespace: "runnel", replicas: undefined, autoscaled: true, antiAffinity: true },
};

const rendered = new Map<string, Manifest[]>();
let validator = "";

before(() => {
  validator = kubernetesValidate();
  for (const overlay of Object.keys(OVERLAYS)) {
    rendered.set(overlay, parseManifests(render(join(KUBERNETES_DIR, "overlays", overlay))));
  }
});

const docsOf = (overlay: string): Manifest[] => structuredClone(rendered.get(overlay)!);

test("every overlay in deploy/kubernetes/overlays is checked here", () => {
  assert.deepEqual(readdirSync(join(KUBERNETES_DIR, "overlays")).sort(), Object.keys(OVERLAYS).sort());
});

for (const [overlay, expect] of Object.entries(OVERLAYS)) {
  describe(`overlays/${overlay}`, () => {
    test("renders the objects of one Runnel installation", () => {
      const kinds = docsOf(overlay)
        .map((d) => d.kind)
        .sort();
      const expected = [
        "ConfigMap",
        "PodDisruptionBudget",
        "Service",
        "Service",
        "ServiceAccount",
        "ServiceMonitor",
        "StatefulSet",
        ...(expect.autoscaled ? ["HorizontalPodAutoscaler"] : []),
      ].sort();
      assert.deepEqual(kinds, expected);
    });

    test(`validates against the Kubernetes ${KUBERNETES_VERSIONS[0]}–${KUBERNETES_VERSIONS.at(-1)} schemas (strict)`, () => {
      for (const version of KUBERNETES_VERSIONS) {
        const result = validate(validator, docsOf(overlay), version);
        assert.deepEqual(result.errors, [], `Kubernetes ${version}`);
        assert.deepEqual(result.skipped, CUSTOM_KINDS, `Kubernetes ${version}: kinds without a schema`);
        assert.equal(result.exitCode, 0);
      }
    });

    test("its ServiceMonitor matches the ServiceMonitor schema", () => {
      const monitors = docsOf(overlay).filter((d) => d.kind === "ServiceMonitor");
      assert.equal(monitors.length, 1);
      assert.deepEqual(serviceMonitorSchemaProblems(monitors[0]!), []);
    });

    test("has the properties Runnel relies on (probes, shutdown, security, settings, scaling)", () => {
      assert.deepEqual(manifestProblems(docsOf(overlay), expect), []);
    });
  });
}

describe("the examples of docs/kubernetes.md", () => {
  // Each ```yaml block whose first line is "# <dir>/kustomization.yaml", written as that file in a
  // directory beside a checkout of Runnel named runnel/, as the page describes.
  const doc = readFileSync(join(ROOT, "docs", "kubernetes.md"), "utf8");
  const examples = new Map(
    [...doc.matchAll(/```yaml\n# ([\w-]+)\/kustomization\.yaml\n([\s\S]*?)```/g)].map((m) => [m[1]!, m[2]!]),
  );
  let dir = "";
  before(() => {
    dir = mkdtempSync(join(tmpdir(), "runnel-k8s-docs-"));
    symlinkSync(ROOT, join(dir, "runnel"));
    for (const [name, text] of examples) {
      mkdirSync(join(dir, name));
      writeFileSync(join(dir, name, "kustomization.yaml"), text);
    }
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test("the page has both examples", () => {
    assert.deepEqual([...examples.keys()], ["my-runnel", "my-runnel-without-operator"]);
  });

  test("your overlay: production with your image and brokers, every check passing", () => {
    const docs = parseManifests(render(join(dir, "my-runnel")));
    assert.deepEqual(manifestProblems(docs, OVERLAYS.production!), []);
    assert.deepEqual(validate(validator, docs, KUBERNETES_VERSIONS.at(-1)!).errors, []);
    const version = (JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { version: string }).version;
    assert.match(
      JSON.stringify(find(docs, "StatefulSet")),
      new RegExp(`"image":"registry.example.com/runnel:${version}"`),
    );
    assert.match(
      JSON.stringify(find(docs, "ConfigMap")),
      /"RUNNEL_KAFKA_BROKERS":"kafka-0.kafka.data.svc:9092,kafka-1.kafka.data.svc:9092,kafka-2.kafka.data.svc:9092"/,
    );
  });

  test("without Prometheus Operator: the same objects but the ServiceMonitor", () => {
    const kinds = (docs: Manifest[]) => docs.map((d) => `${d.kind}/${d.metadata.name}`).sort();
    const without = parseManifests(render(join(dir, "my-runnel-without-operator")));
    const withIt = parseManifests(render(join(dir, "my-runnel")));
    assert.deepEqual(
      kinds(without),
      kinds(withIt).filter((k) => k !== "ServiceMonitor/runnel"),
    );
  });
});

/** The one object of `kind` in `docs`. */
function find(docs: readonly Manifest[], kind: string): Manifest {
  const found = docs.filter((d) => d.kind === kind);
  assert.equal(found.length, 1, kind);
  return found[0]!;
}

/** Sets the field at a dotted path of a parsed object ("spec.template.spec.containers.0.image"), or deletes it. */
function edit(doc: object, path: string, value: unknown): void {
  const keys = path.split(".");
  let node = doc as Record<string, unknown>;
  for (const key of keys.slice(0, -1)) {
    const next = node[key];
    assert.ok(typeof next === "object" && next !== null, `${path}: no ${key}`);
    node = next as Record<string, unknown>;
  }
  const last = keys.at(-1)!;
  if (value === undefined) {
    assert.ok(last in node, `${path} is there to delete`);
    delete node[last];
  } else node[last] = value;
}

const CONTAINER = "spec.template.spec.containers.0";
const DELETE = undefined;

describe("the checks fail on broken manifests", () => {
  test("kubectl kustomize refuses an overlay whose resource is missing", () => {
    const dir = mkdtempSync(join(tmpdir(), "runnel-kustomize-"));
    try {
      writeFileSync(join(dir, "kustomization.yaml"), "resources:\n  - missing.yaml\n");
      assert.throws(() => render(dir), /missing\.yaml/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("the validator reports a wrong type and an unknown field, and skips a misspelt kind", () => {
    const docs = docsOf("production");
    const sts = find(docs, "StatefulSet");
    edit(sts, "spec.replicas", "three");
    const typo = { ...find(docs, "PodDisruptionBudget"), kind: "PodDisruptionBudgett" };
    const result = validate(validator, [...docs, typo], "1.32");
    assert.equal(result.errors.length, 1, result.errors.join("\n"));
    assert.match(result.errors[0]!, /^statefulset\/runnel: spec\.replicas: 'three' is not of type 'integer'/);
    assert.notEqual(result.exitCode, 0);
    // Not an error for the validator, so the overlay tests compare `skipped` with CUSTOM_KINDS.
    assert.deepEqual(result.skipped.sort(), [
      "monitoring.coreos.com/v1 ServiceMonitor",
      "policy/v1 PodDisruptionBudgett",
    ]);

    edit(sts, "spec.replicas", 3);
    edit(sts, `${CONTAINER}.readinesProbe`, { httpGet: { path: "/readyz", port: "http" } });
    const unknown = validate(validator, docs, "1.32");
    assert.match(unknown.errors.join("\n"), /'readinesProbe' was unexpected/);
  });

  test("the ServiceMonitor schema refuses a bad duration and a misspelt field", () => {
    const monitor = find(docsOf("production"), "ServiceMonitor");
    edit(monitor, "spec.endpoints.0.interval", "15 seconds");
    edit(monitor, "spec.endpoints.0.paht", "/metrics");
    const problems = serviceMonitorSchemaProblems(monitor).join("\n");
    assert.match(problems, /\/spec\/endpoints\/0\/interval: must match pattern/);
    assert.match(problems, /\/spec\/endpoints\/0: must NOT have additional properties/);
  });

  /** [what is broken, the overlay, the kind, the field, its new value (DELETE: removed), the problem expected]. */
  const broken: [string, string, string, string, unknown, RegExp][] = [
    [
      "readiness on /healthz",
      "production",
      "StatefulSet",
      `${CONTAINER}.readinessProbe.httpGet.path`,
      "/healthz",
      /readinessProbe must GET \/readyz/,
    ],
    [
      "a root user",
      "production",
      "StatefulSet",
      "spec.template.spec.securityContext",
      { runAsUser: 0 },
      /runAsNonRoot must be true.*\n.*runAsUser is root/,
    ],
    [
      "a host path volume",
      "production",
      "StatefulSet",
      "spec.template.spec.volumes.0",
      { name: "tmp", hostPath: { path: "/tmp" } },
      /volume tmp is a hostPath volume, which the restricted Pod Security Standard refuses/,
    ],
    [
      "a writable root filesystem",
      "production",
      "StatefulSet",
      `${CONTAINER}.securityContext.readOnlyRootFilesystem`,
      false,
      /readOnlyRootFilesystem must be true/,
    ],
    [
      "a setting Runnel does not have",
      "production",
      "ConfigMap",
      "data.RUNNEL_LOGLEVEL",
      "info",
      /env RUNNEL_LOGLEVEL is not a setting of src\/config\/config.ts/,
    ],
    [
      "a setting Runnel refuses",
      "production",
      "ConfigMap",
      "data.RUNNEL_KAFKA_BROKERS",
      "kafka",
      /Runnel refuses the rendered settings: invalid configuration: RUNNEL_KAFKA_BROKERS/,
    ],
    [
      "a database URL written in the manifest",
      "production",
      "StatefulSet",
      `${CONTAINER}.env.4`,
      { name: "RUNNEL_DATABASE_URL", value: "postgres://runnel:secret@db:5432/runnel" },
      /env RUNNEL_DATABASE_URL is written in the manifests/,
    ],
    [
      "an advertised URL that names another Service",
      "production",
      "StatefulSet",
      "spec.serviceName",
      "runnel",
      /must be headless[\s\S]*RUNNEL_ADVERTISED_URL resolves to http:\/\/runnel-0\.runnel-headless/,
    ],
    [
      "service links left on",
      "production",
      "StatefulSet",
      "spec.template.spec.enableServiceLinks",
      DELETE,
      /enableServiceLinks must be false/,
    ],
    [
      "a grace period shorter than the shutdown",
      "production",
      "StatefulSet",
      "spec.template.spec.terminationGracePeriodSeconds",
      30,
      /terminationGracePeriodSeconds 30 leaves less than 60 s/,
    ],
    [
      "a budget that blocks every drain",
      "production",
      "PodDisruptionBudget",
      "spec.minAvailable",
      3,
      /minAvailable 3 of 3 instances blocks every node drain/,
    ],
    [
      "instances allowed on one node",
      "production",
      "StatefulSet",
      "spec.template.spec.affinity",
      DELETE,
      /required podAntiAffinity/,
    ],
    [
      "a scrape job the alert rules do not select",
      "production",
      "ServiceMonitor",
      "spec.endpoints.0.relabelings",
      [],
      /job label undefined, but deploy\/prometheus\/rules select job="runnel"/,
    ],
    [
      "an image of another version",
      "dev",
      "StatefulSet",
      `${CONTAINER}.image`,
      "registry.example.com/runnel:latest",
      /image registry.example.com\/runnel:latest is not this repository's version/,
    ],
    [
      "an autoscaler beyond the slots",
      "production-autoscaling",
      "HorizontalPodAutoscaler",
      "spec.maxReplicas",
      50,
      /maxReplicas 50 is above the 12 slots/,
    ],
    [
      "an autoscaler on a metric Runnel does not export",
      "production-autoscaling",
      "HorizontalPodAutoscaler",
      "spec.metrics.0.external.metric.name",
      "runnel_consumer_lag",
      /metric runnel_consumer_lag is not exported/,
    ],
  ];
  for (const [name, overlay, kind, path, value, expected] of broken) {
    test(`reports ${name}`, () => {
      const docs = docsOf(overlay);
      assert.deepEqual(manifestProblems(docs, OVERLAYS[overlay]!), [], "sound before the edit");
      edit(find(docs, kind), path, value);
      assert.match(manifestProblems(docs, OVERLAYS[overlay]!).join("\n"), expected);
    });
  }
});
