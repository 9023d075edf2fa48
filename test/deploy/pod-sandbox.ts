/**
 * A StatefulSet pod of the production overlay, run as a process on this machine, which has no
 * cluster or container runtime: test/deploy/fixtures/pod-sandbox.sh gives `runnel start` what the
 * pod's security context imposes (every filesystem read-only but an empty /tmp and the data
 * volume, runAsUser/runAsGroup, no capabilities, no_new_privs) in a mount namespace of its own,
 * and the environment is the rendered ConfigMap and env, with this machine's Kafka and PostgreSQL
 * standing in for the cluster's. Needs root (mount namespaces), as CI has.
 */

import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { Admin } from "@platformatic/kafka";
import { type ArchiveEnv, sharedArchiveEnv } from "../archive/s3-server.js";
import { kafkaBrokers } from "../helpers/kafka.js";
import { onServer, postgresServerUrl, withDatabase } from "../helpers/postgres.js";
import { untilListening } from "../helpers/server-process.js";
import { KUBERNETES_DIR, type Manifest, parseManifests, podEnvironment, ROOT, render } from "./kubernetes-manifests.js";

const SANDBOX = join(import.meta.dirname, "fixtures", "pod-sandbox.sh");
/** An empty directory on every Debian machine; `/data` cannot be created on the read-only root, so the volume goes here. */
export const DATA_MOUNT = "/srv";
export const ADMIN_PASSWORD = "change-me-please";
export const NAMESPACE = "runnel";

/** A port nothing listens on now, for a pod that advertises its address and comes back at it. */
export async function freePort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
  const { port } = probe.address() as { port: number };
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}

/** Why the sandbox cannot run here, or undefined when it can. */
export function sandboxUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return "needs root for a mount namespace";
  for (const tool of ["unshare", "setpriv"]) {
    if (spawnSync(tool, ["--version"]).status !== 0) return `needs ${tool} (util-linux)`;
  }
  if (!existsSync(DATA_MOUNT)) return `needs a ${DATA_MOUNT} directory to mount the data volume on`;
  return undefined;
}

/** The fields of the rendered pod template these tests use. */
export interface PodTemplate {
  readonly terminationGracePeriodSeconds: number;
  readonly securityContext: { readonly runAsUser: number; readonly runAsGroup: number };
  readonly containers: readonly {
    readonly volumeMounts: readonly { readonly mountPath: string }[];
    readonly lifecycle: { readonly preStop: { readonly exec: { readonly command: readonly string[] } } };
  }[];
}

export interface ProductionPods {
  readonly docs: Manifest[];
  readonly pod: PodTemplate;
  /** The preStop pause, in seconds. */
  readonly preStopSeconds: number;
}

export function productionPods(): ProductionPods {
  const docs = parseManifests(render(join(KUBERNETES_DIR, "overlays", "production")));
  const sts = docs.find((d) => d.kind === "StatefulSet") as Manifest & { spec: { template: { spec: PodTemplate } } };
  const pod = sts.spec.template.spec;
  return { docs, pod, preStopSeconds: Number(pod.containers[0]!.lifecycle.preStop.exec.command[1]) };
}

/** What stands in for the cluster around the pod. */
export interface Surroundings {
  readonly kafkaBrokers: string;
  readonly databaseUrl: string;
  /** Names this test's topics and installation on the shared broker. */
  readonly unique: string;
  /** The port to listen on, on loopback (freePort()): the pod advertises it to the others. */
  readonly port: number;
  /** The archive the pods share: a bucket of the test S3 server, and its credentials. */
  readonly archive: ArchiveEnv;
}

/**
 * The environment of pod `podName`: what the image sets (Dockerfile ENV, and a HOME that is not
 * writable, as the image's is not), the rendered ConfigMap and env, the Secret's keys, and the
 * overrides one shared machine needs: its own Kafka and database, topics and a group of the
 * test's own, loopback, and the data volume on DATA_MOUNT.
 */
export function podEnv(pods: ProductionPods, podName: string, around: Surroundings): Record<string, string> {
  const { env, secrets, unresolved } = podEnvironment(pods.docs, podName, NAMESPACE);
  if (unresolved.length > 0) throw new Error(`unresolved env: ${unresolved.join(", ")}`);
  const secretValues: Record<string, string> = {
    RUNNEL_DATABASE_URL: around.databaseUrl,
    RUNNEL_TOKEN_SECRET: `${around.unique}-token-secret-0123456789abcdef`,
    RUNNEL_ADMIN_PASSWORD: ADMIN_PASSWORD,
    AWS_ACCESS_KEY_ID: around.archive.AWS_ACCESS_KEY_ID,
    AWS_SECRET_ACCESS_KEY: around.archive.AWS_SECRET_ACCESS_KEY,
  };
  for (const name of secrets.keys()) {
    if (secretValues[name] === undefined) throw new Error(`no stand-in for the Secret's ${name}`);
  }
  return {
    PATH: process.env.PATH ?? "/usr/bin:/bin",
    NODE_ENV: "production",
    HOME: "/home/node",
    ...env,
    ...secretValues,
    RUNNEL_KAFKA_BROKERS: around.kafkaBrokers,
    RUNNEL_KAFKA_TOPIC_PREFIX: `${around.unique}-`,
    RUNNEL_INSTALLATION: around.unique,
    RUNNEL_HOST: "127.0.0.1",
    RUNNEL_PORT: String(around.port),
    RUNNEL_ADVERTISED_URL: `http://127.0.0.1:${around.port}`,
    RUNNEL_DATA_DIR: DATA_MOUNT,
    ...around.archive,
    RUNNEL_LOG_LEVEL: "warn",
  };
}

/**
 * `runnel start` in the sandbox as uid:gid, with exactly `env`. `volume`: a host directory that
 * holds the data volume across restarts, as a PersistentVolumeClaim does; a fresh tmpfs by default.
 */
export function startInSandbox(
  uid: number,
  gid: number,
  env: Record<string, string>,
  volume: string = "tmpfs",
): ChildProcess {
  const sandbox = [SANDBOX, String(uid), String(gid), DATA_MOUNT, volume];
  const runnel = [process.execPath, "--import", "tsx", join(ROOT, "bin", "runnel.ts"), "start"];
  return spawn("unshare", ["--mount", "--propagation", "private", "bash", ...sandbox, ...runnel], {
    cwd: ROOT,
    env,
    stdio: ["ignore", "ignore", "pipe"],
  });
}

export interface RunningPod {
  readonly name: string;
  readonly child: ChildProcess;
  readonly url: string;
  readonly exited: Promise<number | null>;
  stderr(): string;
}

/** Starts pod `name` of the production overlay (data volume: see startInSandbox) and resolves once it listens. */
export async function startPod(
  pods: ProductionPods,
  name: string,
  around: Surroundings,
  volume?: string,
): Promise<RunningPod> {
  const { runAsUser, runAsGroup } = pods.pod.securityContext;
  const child = startInSandbox(runAsUser, runAsGroup, podEnv(pods, name, around), volume);
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  try {
    const { url, stderr } = await untilListening(child);
    return { name, child, url, exited, stderr };
  } catch (e) {
    // Never handed to the caller, so nobody else would stop it.
    child.kill("SIGKILL");
    await exited;
    throw e;
  }
}

/** This machine's Kafka and PostgreSQL for one test's pods, and what removes their traces. */
export interface Services {
  readonly shared: Omit<Surroundings, "port">;
  /** Kills the pods still running, then drops the database and deletes the topics. */
  cleanup(pods: Iterable<RunningPod>): Promise<void>;
}

/** A database of its own on the test PostgreSQL, and names of its own (`tag`) on the test broker. */
export async function services(tag: string): Promise<Services> {
  const server = postgresServerUrl();
  const brokers = kafkaBrokers();
  await onServer(server, `CREATE DATABASE ${tag}`);
  return {
    shared: {
      kafkaBrokers: brokers,
      databaseUrl: withDatabase(server, tag),
      unique: tag,
      archive: await sharedArchiveEnv(),
    },
    async cleanup(pods) {
      for (const pod of pods) {
        if (pod.child.exitCode === null && pod.child.signalCode === null) pod.child.kill("SIGKILL");
        await pod.exited;
      }
      await onServer(server, `DROP DATABASE IF EXISTS ${tag} WITH (FORCE)`);
      const admin = new Admin({ clientId: tag, bootstrapBrokers: brokers.split(",") });
      try {
        const topics = (await admin.listTopics()).filter((t) => t.startsWith(`${tag}-`));
        if (topics.length > 0) await admin.deleteTopics({ topics });
      } finally {
        await admin.close();
      }
    },
  };
}
