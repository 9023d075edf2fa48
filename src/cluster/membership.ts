/**
 * Ownership of partitions through Kafka's own consumer group protocol (issue 19): a member joins a
 * group for a set of topics and is told which partitions it gained and which it lost. Nothing of
 * ours decides who owns what; the broker's group coordinator does.
 *
 * The protocol is KIP-848's (`group.protocol=consumer`, Kafka 4.x): the broker computes the
 * target assignment and hands it out through heartbeats, so a change in membership revokes only
 * the partitions that move; every other member keeps consuming (no stop-the-world JoinGroup and
 * SyncGroup round). With an `instanceId` the member is static (KIP-345): its identity survives a
 * restart.
 *
 * No records flow through the membership: it opens the client's message stream (the client joins
 * the group only when a stream subscribes) and never reads it, and the client fetches nothing for
 * a stream nobody reads. The owner of a partition reads it with its own reader.
 *
 * What the client does not offer, and the runtime must therefore not rely on: a revocation the
 * application can hold until it has checkpointed. The client acknowledges a revocation with a
 * heartbeat sent as soon as it has applied it, and `revoked` is emitted when that heartbeat is
 * answered, so by then another member may already own the partition. Exactly-once across a move comes from fencing at the outputs (Kafka transactions,
 * the checkpoint store's epochs), never from the order of these events.
 *
 * @example
 *   const member = new GroupMembership({ brokers: ["127.0.0.1:9092"], group: "runnel-tasks",
 *     topics: ["runnel.clicks"], instanceId: "runnel-a" });
 *   member.on("assigned", ({ partitions }) => start(partitions));
 *   member.on("revoked", ({ partitions, reason }) => stop(partitions, reason));
 *   await member.join();
 *   // …
 *   await member.leave();
 */
import { EventEmitter } from "node:events";
import {
  Admin,
  ConfigResourceTypes,
  Connection,
  Consumer,
  consumerGroupHeartbeatV1,
  GroupProtocols,
  IncrementalAlterConfigOperationTypes,
  type MessagesStream,
} from "@platformatic/kafka";
import { RunnelError } from "../core/errors.js";

export interface TopicPartition {
  readonly topic: string;
  readonly partition: number;
}

export interface MembershipOptions {
  /** `host:port` of at least one broker. */
  readonly brokers: readonly string[];
  /** The consumer group: one per installation and kind of task. */
  readonly group: string;
  /** The topics whose partitions are shared out. */
  readonly topics: readonly string[];
  /**
   * A stable name for this member (static membership): its restarts are the same member. Leave
   * it out for a dynamic member, which is a new member on every join.
   */
  readonly instanceId?: string;
  readonly clientId?: string;
  /**
   * How long the broker waits for this member to give up revoked partitions before it assigns
   * them anyway (the member is then fenced). Default 30 s.
   */
  readonly rebalanceTimeoutMs?: number;
  /** How long join() keeps trying while a crashed predecessor still holds the instance id. Default 2 min. */
  readonly joinTimeoutMs?: number;
  /**
   * The group's session timeout: how long the broker waits for a silent member before it moves
   * its partitions (KIP-848 keeps it on the broker, as the group configuration
   * `consumer.session.timeout.ms`, which join() sets). It must lie within the brokers'
   * `group.consumer.min.session.timeout.ms` and `…max…` (45 s and 60 s by default). Unset: the
   * brokers' `group.consumer.session.timeout.ms`.
   */
  readonly sessionTimeoutMs?: number;
  /** The group's heartbeat interval (`consumer.heartbeat.interval.ms`), likewise; below the session timeout. */
  readonly heartbeatIntervalMs?: number;
}

/** Why partitions were taken away. */
export type RevokeReason =
  /** The group moved them to another member; this member acknowledged on its next heartbeat. */
  | "rebalance"
  /**
   * The broker fenced this member (it missed its session, e.g. paused past the session timeout):
   * they may already be owned and written by another member, so nothing may be committed for them.
   */
  | "fenced"
  /** This member left the group (leave()). */
  | "left";

export interface AssignedEvent {
  readonly partitions: readonly TopicPartition[];
  /** Everything owned after the change. */
  readonly owned: readonly TopicPartition[];
}

export interface RevokedEvent {
  readonly partitions: readonly TopicPartition[];
  readonly owned: readonly TopicPartition[];
  readonly reason: RevokeReason;
}

/** The group coordinator answered a heartbeat: the member's session runs at least until `sentAt` + the session timeout. */
export interface HeartbeatEvent {
  /** When the answered heartbeat was sent (ms since the epoch): the broker heard it no earlier. */
  readonly sentAt: number;
}

export interface MembershipEvents {
  assigned: [AssignedEvent];
  revoked: [RevokedEvent];
  heartbeat: [HeartbeatEvent];
  /** A heartbeat failed or stalled, a rejoin failed, or the client's message stream failed; the client keeps retrying. */
  error: [Error];
}

const DEFAULT_REBALANCE_TIMEOUT_MS = 30_000;
const DEFAULT_JOIN_TIMEOUT_MS = 120_000;
const JOIN_RETRY_MS = 1_000;
/** Kafka's error codes (org.apache.kafka.common.protocol.Errors). */
const UNKNOWN_MEMBER_ID = 25;
const FENCED_MEMBER_EPOCH = 110;
const UNRELEASED_INSTANCE_ID = 111;
/** KIP-848: a static member leaving for a restart; its assignment is kept for the session timeout. */
const LEAVE_GROUP_STATIC_MEMBER_EPOCH = -2;
/** KIP-848's group configuration of the session timeout. */
const SESSION_TIMEOUT = "consumer.session.timeout.ms";

interface HeldMembership {
  readonly memberId: string;
  readonly host: string;
  readonly port: number;
}

type Assignment = readonly { readonly topic: string; readonly partitions: readonly number[] }[];

export class GroupMembership extends EventEmitter<MembershipEvents> {
  private readonly options: MembershipOptions;
  private consumer: Consumer | undefined;
  private stream: MessagesStream<Buffer, Buffer, Buffer, Buffer> | undefined;
  private current = new Map<string, TopicPartition>();
  /** leave() was called: a rejoin under way must not bring the member back. */
  private left = false;

  constructor(options: MembershipOptions) {
    super();
    validate(options);
    this.options = options;
  }

  /** The member id the broker gave this member (undefined before join and after leave). */
  get memberId(): string | undefined {
    return this.consumer?.memberId ?? undefined;
  }

  /** The partitions this member owns now, sorted by topic and partition. */
  owned(): TopicPartition[] {
    return sorted([...this.current.values()]);
  }

  /**
   * Joins the group; resolves once the broker has accepted the member (its first assignment may
   * follow). A static member whose previous incarnation crashed is refused by the broker
   * (UNRELEASED_INSTANCE_ID) until that incarnation's session expires: join keeps trying, every
   * second, for up to `joinTimeoutMs`.
   */
  async join(): Promise<void> {
    if (this.consumer !== undefined) throw new RunnelError("conflict", "this member has already joined");
    this.left = false;
    await this.configure();
    await this.connect();
  }

  /**
   * The group's session timeout as the brokers apply it: `sessionTimeoutMs` once join() has set
   * it, else the brokers' `group.consumer.session.timeout.ms`.
   */
  async sessionTimeoutMs(): Promise<number> {
    const { brokers, group, clientId } = this.options;
    const admin = new Admin({ clientId: clientId ?? "runnel-member", bootstrapBrokers: [...brokers] });
    try {
      const [described] = await admin.describeConfigs({
        resources: [
          { resourceType: ConfigResourceTypes.GROUP, resourceName: group, configurationKeys: [SESSION_TIMEOUT] },
        ],
        includeSynonyms: false,
        includeDocumentation: false,
      });
      const value = Number(described?.configs.find((c) => c.name === SESSION_TIMEOUT)?.value);
      if (!(Number.isInteger(value) && value > 0)) {
        throw new RunnelError("not_ready", `the brokers did not tell ${SESSION_TIMEOUT} of group "${group}"`);
      }
      return value;
    } catch (e) {
      if (e instanceof RunnelError) throw e;
      throw new RunnelError(
        "not_ready",
        `could not read ${SESSION_TIMEOUT} of group "${group}": ${(e as Error).message}`,
        {
          cause: e,
        },
      );
    } finally {
      await admin.close().catch(() => undefined);
    }
  }

  /**
   * Sets the group's session timeout and heartbeat interval, when given, on the brokers. join()
   * does it first; calling it alone refuses a value out of the brokers' bounds without joining.
   */
  async configure(): Promise<void> {
    const { sessionTimeoutMs, heartbeatIntervalMs, brokers, group, clientId } = this.options;
    const settings = [
      ["sessionTimeoutMs", SESSION_TIMEOUT, sessionTimeoutMs],
      ["heartbeatIntervalMs", "consumer.heartbeat.interval.ms", heartbeatIntervalMs],
    ] as const;
    const given = settings.filter(([, , ms]) => ms !== undefined);
    if (given.length === 0) return;
    const admin = new Admin({ clientId: clientId ?? "runnel-member", bootstrapBrokers: [...brokers] });
    try {
      await admin.incrementalAlterConfigs({
        resources: [
          {
            resourceType: ConfigResourceTypes.GROUP,
            resourceName: group,
            configs: given.map(([, name, ms]) => ({
              name,
              configOperation: IncrementalAlterConfigOperationTypes.SET,
              value: String(ms),
            })),
          },
        ],
      });
    } catch (e) {
      const fields = given.map(([field, , ms]) => `${field} ${ms}`).join(" and ");
      const refusal = brokerMessages(e);
      if (refusal === "") {
        const why = (e as Error).message;
        throw new RunnelError("not_ready", `could not set ${fields} for group "${group}": ${why}`, { cause: e });
      }
      throw new RunnelError("invalid_input", `the brokers refused ${fields} for group "${group}": ${refusal}`, {
        cause: e,
      });
    } finally {
      await admin.close().catch(() => undefined);
    }
  }

  private async connect(): Promise<void> {
    const deadline = Date.now() + (this.options.joinTimeoutMs ?? DEFAULT_JOIN_TIMEOUT_MS);
    for (;;) {
      const consumer = this.createConsumer();
      // Current before the join completes: its first assignment may come with the join's heartbeat.
      this.consumer = consumer;
      try {
        this.stream = await consumer.consume({ topics: [...this.options.topics], mode: "latest", autocommit: false });
        if (this.left) {
          // leave() was called while a rejoin was under way.
          await this.disconnect(consumer);
          return;
        }
        break;
      } catch (e) {
        this.consumer = undefined;
        await consumer.close(true).catch(() => undefined);
        const unreleased = errorCode(e) === UNRELEASED_INSTANCE_ID;
        if (!unreleased || Date.now() >= deadline) {
          const why = unreleased
            ? `instance id "${this.options.instanceId}" is still held by a previous member whose session has not expired`
            : (e as Error).message;
          throw new RunnelError("not_ready", `could not join group "${this.options.group}": ${why}`, { cause: e });
        }
        await new Promise((resolve) => setTimeout(resolve, JOIN_RETRY_MS));
      }
    }
    // A stream that is never read fetches nothing; its errors are the heartbeat's, reported below.
    this.stream.on("error", (e: Error) => this.emit("error", e));
    // The client still refreshes the stream's offsets when a broker goes away, and a refresh that
    // fails (the broker of a partition or the group coordinator killed) destroys the stream, which
    // untracks its topics: the member's heartbeats would then subscribe to nothing, the broker would
    // move its partitions to the others and never give it one again. One more reference to the
    // topics keeps the subscription whatever becomes of the stream (the membership reads nothing
    // from it).
    this.consumer.topics.trackAll(...this.options.topics);
    this.reconcile(this.consumer, "rebalance");
  }

  /**
   * Leaves the group: every owned partition is revoked (reason "left").
   *
   * `temporary` (static members only) is a restart, not a departure (KIP-848's leave with member
   * epoch -2): the broker keeps this member's partitions unassigned until its session times out, and
   * a member joining with the same instance id before then gets them back, so nothing moves. A
   * plain leave (epoch -1) hands them to the others at once.
   */
  async leave(options: { temporary?: boolean } = {}): Promise<void> {
    this.left = true;
    const consumer = this.consumer;
    if (consumer === undefined) return;
    this.consumer = undefined;
    const temporary = options.temporary === true && this.options.instanceId !== undefined;
    const held = temporary ? await this.coordinatorOf(consumer) : undefined;
    if (held !== undefined) {
      // The client always leaves with epoch -1. Without its member id, that leave is refused as
      // coming from an unknown member, and the -2 below, sent as the real member, stands.
      consumer.memberId = null;
    }
    await this.disconnect(consumer);
    if (held !== undefined) await this.leaveTemporarily(held);
    this.apply([], "left");
  }

  private createConsumer(): Consumer {
    const { brokers, group, instanceId, clientId } = this.options;
    const rebalanceTimeout = this.options.rebalanceTimeoutMs ?? DEFAULT_REBALANCE_TIMEOUT_MS;
    // Unused by this protocol (the broker's group configuration sets the session timeout and the
    // heartbeat interval), but the client checks rebalanceTimeout against them, and its defaults
    // (60 s, 3 s) would refuse a shorter one.
    const classicBounds = { sessionTimeout: rebalanceTimeout, heartbeatInterval: Math.min(3_000, rebalanceTimeout) };
    const consumer = new Consumer({
      clientId: clientId ?? `runnel-member-${instanceId ?? group}`,
      bootstrapBrokers: [...brokers],
      groupId: group,
      groupProtocol: GroupProtocols.CONSUMER,
      ...(instanceId !== undefined && { groupInstanceId: instanceId }),
      rebalanceTimeout,
      ...classicBounds,
      autocommit: false,
    });
    // One heartbeat is in flight at a time; its send time bounds the session the answer extends.
    let sentAt: number | undefined;
    consumer.on("consumer:heartbeat:start", () => {
      sentAt = Date.now();
    });
    // The client applies a new assignment, then heartbeats to acknowledge it: every change is
    // visible by the end of some heartbeat.
    consumer.on("consumer:heartbeat:end", () => {
      const answered = sentAt;
      sentAt = undefined;
      this.reconcile(consumer, "rebalance");
      if (answered !== undefined && this.consumer === consumer) this.emit("heartbeat", { sentAt: answered });
    });
    consumer.on("consumer:heartbeat:error", ({ error }) => {
      sentAt = undefined;
      if (this.consumer !== consumer) return;
      this.emit("error", error);
      const code = errorCode(error);
      // The client empties a fenced member's assignment right after telling us of the error.
      if (code === FENCED_MEMBER_EPOCH) setImmediate(() => this.reconcile(consumer, "fenced"));
      if (code === UNKNOWN_MEMBER_ID) void this.rejoin(consumer);
    });
    consumer.on("consumer:heartbeat:stalled", ({ lastError, stalledFor }) => {
      const why = lastError?.message ?? "no answer";
      if (this.consumer === consumer) this.emit("error", new Error(`heartbeats stalled for ${stalledFor} ms: ${why}`));
    });
    return consumer;
  }

  /**
   * The broker removed this member: its session expired while it could not heartbeat (a SIGSTOP,
   * a long pause, a partition from the coordinator). Its partitions may already be another
   * member's, so they are revoked at once ("fenced"), and the member joins again as a new one.
   * The client (2.12) would otherwise repeat the refused heartbeat for ever and keep reporting the
   * old assignment. A join that fails (no coordinator while a broker is down) is tried again every
   * second until it succeeds or leave() is called.
   */
  private async rejoin(stale: Consumer): Promise<void> {
    this.consumer = undefined;
    this.apply([], "fenced");
    await this.disconnect(stale);
    while (!this.left) {
      try {
        await this.connect();
        return;
      } catch (e) {
        this.emit("error", e as Error);
        await new Promise((resolve) => setTimeout(resolve, JOIN_RETRY_MS));
      }
    }
  }

  private async disconnect(consumer: Consumer): Promise<void> {
    const stream = this.stream;
    this.stream = undefined;
    await stream?.close().catch(() => undefined);
    await consumer.close(true).catch(() => undefined);
  }

  /** Where the group coordinator is, and who this member is there, while the client still knows. */
  private async coordinatorOf(consumer: Consumer): Promise<HeldMembership | undefined> {
    const memberId = consumer.memberId;
    const coordinator = consumer.coordinatorId;
    if (memberId === null || coordinator === null) return undefined;
    const metadata = await consumer.metadata({ topics: [...this.options.topics] });
    const broker = metadata.brokers.get(coordinator);
    return broker === undefined ? undefined : { memberId, host: broker.host, port: broker.port };
  }

  private async leaveTemporarily(held: HeldMembership): Promise<void> {
    const connection = new Connection(this.options.clientId ?? "runnel-member");
    try {
      await connection.connect(held.host, held.port);
      await consumerGroupHeartbeatV1.api.async(
        connection,
        this.options.group,
        held.memberId,
        LEAVE_GROUP_STATIC_MEMBER_EPOCH,
        this.options.instanceId ?? null,
        null,
        0,
        [],
        null,
        null,
        [],
      );
    } finally {
      await connection.close().catch(() => undefined);
    }
  }

  private reconcile(consumer: Consumer, reason: RevokeReason): void {
    if (this.consumer !== consumer) return;
    // null: no assignment received yet (not "none").
    if (consumer.assignments === null) return;
    this.apply(consumer.assignments, reason);
  }

  private apply(assignment: Assignment, reason: RevokeReason): void {
    const next = new Map<string, TopicPartition>();
    for (const { topic, partitions } of assignment) {
      for (const partition of partitions) next.set(`${topic}\u0000${partition}`, { topic, partition });
    }
    const revoked = [...this.current].filter(([k]) => !next.has(k)).map(([, tp]) => tp);
    const assigned = [...next].filter(([k]) => !this.current.has(k)).map(([, tp]) => tp);
    if (revoked.length === 0 && assigned.length === 0) return;
    this.current = next;
    const owned = this.owned();
    if (revoked.length > 0) this.emit("revoked", { partitions: sorted(revoked), owned, reason });
    if (assigned.length > 0) this.emit("assigned", { partitions: sorted(assigned), owned });
  }
}

/** The brokers' own words in a failed admin request (`errorMessage` of each refused resource). */
function brokerMessages(error: unknown, depth = 0): string {
  if (typeof error !== "object" || error === null || depth > 6) return "";
  const found: string[] = [];
  for (const [key, value] of Object.entries(error)) {
    if (key === "errorMessage" && typeof value === "string" && value !== "") found.push(value);
    else if (typeof value === "object") found.push(brokerMessages(value, depth + 1));
  }
  const errors = (error as { errors?: unknown }).errors;
  if (Array.isArray(errors)) for (const inner of errors) found.push(brokerMessages(inner, depth + 1));
  return [...new Set(found.filter((m) => m !== ""))].join("; ");
}

/** The Kafka error code of a failed group request, if it carries one. */
function errorCode(error: unknown): number | undefined {
  return (error as { response?: { errorCode?: number } } | undefined)?.response?.errorCode;
}

function sorted(partitions: TopicPartition[]): TopicPartition[] {
  return partitions.sort((a, b) => (a.topic === b.topic ? a.partition - b.partition : a.topic < b.topic ? -1 : 1));
}

function validate(options: MembershipOptions): void {
  if (options.brokers.length === 0) throw new RunnelError("invalid_input", "brokers must name at least one broker");
  if (options.group.length === 0) throw new RunnelError("invalid_input", "group must not be empty");
  if (options.topics.length === 0) throw new RunnelError("invalid_input", "topics must name at least one topic");
  if (options.instanceId !== undefined && options.instanceId.length === 0) {
    throw new RunnelError("invalid_input", "instanceId must not be empty when given");
  }
  for (const field of ["rebalanceTimeoutMs", "joinTimeoutMs", "sessionTimeoutMs", "heartbeatIntervalMs"] as const) {
    const ms = options[field];
    if (ms !== undefined && !(Number.isInteger(ms) && ms > 0)) {
      throw new RunnelError("invalid_input", `${field} must be a positive integer, got ${ms}`);
    }
  }
}
