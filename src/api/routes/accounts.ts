/** Accounts and credentials (API.md): signup, login, the caller's profile, settings, activity, API keys, and admin user management. */
import type { FastifyInstance, FastifyRequest } from "fastify";
import { generateApiKey } from "../../control/api-keys.js";
import { ACTIVITY_DEFAULT_LIMIT, ACTIVITY_MAX_LIMIT } from "../../control/sql-store.js";
import { ROLES, type Role, type User } from "../../control/types.js";
import { foldUsername } from "../../control/usernames.js";
import { RunnelError } from "../../core/errors.js";
import { principalOf } from "../app.js";
import type { AuthPrincipal } from "../auth/authenticate.js";
import { type LoginClient, login } from "../auth/login.js";
import { RateLimiter } from "../auth/rate-limit.js";
import { LoginThrottle } from "../auth/throttle.js";
import type { ApiServices } from "../services.js";

const USERNAME = "^[A-Za-z0-9_.-]{1,64}$";
const EMAIL = "^[^\\s@]{1,128}@[^\\s@]{1,255}$";

const credentialsSchema = {
  type: "object",
  additionalProperties: false,
  required: ["username", "email", "password"],
  properties: {
    username: { type: "string", pattern: USERNAME },
    email: { type: "string", pattern: EMAIL },
    password: { type: "string", minLength: 8, maxLength: 1024 },
  },
} as const;

export function publicUser(user: User) {
  return {
    id: user.id,
    username: user.username,
    email: user.email,
    role: user.role,
    disabled: user.disabled,
    createdAt: user.createdAt,
  };
}

/**
 * Usernames arrive NFKC-normalised, before the schema checks them: a compatibility form such as
 * fullwidth `ａｄｍｉｎ` is the name `admin` (and then taken), not a look-alike second account.
 */
async function normaliseUsername(request: FastifyRequest): Promise<void> {
  const body = request.body as { username?: unknown } | undefined;
  if (typeof body?.username === "string") body.username = body.username.normalize("NFKC");
}

function clientOf(request: FastifyRequest): LoginClient {
  const agent = request.headers["user-agent"];
  return { ip: request.ip, userAgent: agent === undefined ? null : agent.slice(0, 256) };
}

const activityQuery = {
  type: "object",
  additionalProperties: false,
  properties: {
    limit: { type: "string", pattern: "^[0-9]{1,3}$" },
    before: { type: "string", pattern: "^[1-9][0-9]{0,18}$" },
  },
} as const;

const usernameParams = {
  type: "object",
  required: ["username"],
  properties: { username: { type: "string", pattern: USERNAME } },
} as const;

/** Roles a credential may mint keys for: an admin any, everyone else only `user` (API.md). */
function keyRoleFor(principal: AuthPrincipal, requested: Role | undefined): Role {
  if (principal.role === "admin") return requested ?? "admin";
  const role = requested ?? "user";
  if (role !== "user") throw new RunnelError("forbidden", `only an admin may create ${role} keys`);
  return role;
}

export function registerAccountRoutes(app: FastifyInstance, services: ApiServices): void {
  const { control, passwords, tokens } = services;
  const throttle = new LoginThrottle(services.clock);
  const signups = new RateLimiter(services.clock, services.config.auth.signupRate, "signups from this address");
  const keyCreations = new RateLimiter(services.clock, services.config.auth.apiKeyRate, "API keys created");
  const anyone = { access: "public" } as const;
  const signedIn = { access: "authenticated" } as const;
  const admins = { access: ["admin"] } as const;

  const activityPage = async (userId: string, query: { limit?: string; before?: string }) => {
    const limit = query.limit === undefined ? ACTIVITY_DEFAULT_LIMIT : Number(query.limit);
    if (limit < 1) throw new RunnelError("invalid_input", "limit must be at least 1");
    const activity = await control.listActivity(userId, {
      limit,
      ...(query.before !== undefined && { before: query.before }),
    });
    // A full page may have more behind it; the client passes `next` back as `before`.
    const full = activity.length === Math.min(limit, ACTIVITY_MAX_LIMIT);
    return { activity, next: full ? (activity[activity.length - 1]?.id ?? null) : null };
  };

  app.post<{ Body: { username: string; email: string; password: string } }>(
    "/auth/signup",
    { config: anyone, schema: { body: credentialsSchema }, preValidation: normaliseUsername },
    async (request, reply) => {
      // Before the password is hashed: the hash is the cost a flood of signups would impose.
      signups.take(`ip:${request.ip}`);
      const { username, email, password } = request.body;
      const user = await control.createUser({
        username,
        email,
        passwordHash: await passwords.hash(password),
        role: "user",
      });
      await control.recordActivity(user.id, "signup", { ...clientOf(request) });
      return reply.status(201).send({ user: publicUser(user) });
    },
  );

  app.post<{ Body: { username: string; password: string } }>(
    "/auth/login",
    {
      config: anyone,
      schema: {
        body: {
          type: "object",
          additionalProperties: false,
          required: ["username", "password"],
          properties: { username: { type: "string", maxLength: 64 }, password: { type: "string", maxLength: 1024 } },
        },
      },
    },
    async (request) => {
      const { username, password } = request.body;
      const result = await login({ control, passwords, tokens, throttle }, username, password, clientOf(request));
      return { token: result.token, expiresIn: result.expiresIn, user: publicUser(result.user) };
    },
  );

  app.get("/me", { config: signedIn }, async (request) => {
    const principal = await principalOf(request, services);
    const user = await control.getUserById(principal.userId);
    if (!user) throw new RunnelError("unauthorized", "the account no longer exists");
    return { user: publicUser(user), role: principal.role, credential: principal.credential };
  });

  app.patch<{ Body: { email: string } }>(
    "/me",
    {
      config: signedIn,
      schema: {
        body: {
          type: "object",
          additionalProperties: false,
          required: ["email"],
          properties: { email: { type: "string", pattern: EMAIL } },
        },
      },
    },
    async (request) => {
      const principal = await principalOf(request, services);
      const user = await control.updateUser(principal.userId, { email: request.body.email });
      await control.recordActivity(principal.userId, "email_changed", { ...clientOf(request) });
      return { user: publicUser(user) };
    },
  );

  app.post<{ Body: { current: string; next: string } }>(
    "/me/password",
    {
      config: signedIn,
      schema: {
        body: {
          type: "object",
          additionalProperties: false,
          required: ["current", "next"],
          properties: {
            current: { type: "string", maxLength: 1024 },
            next: { type: "string", minLength: 8, maxLength: 1024 },
          },
        },
      },
    },
    async (request) => {
      const principal = await principalOf(request, services);
      const client = clientOf(request);
      // The same throttle as login: a stolen token must not become a way to guess the password.
      const refused = throttle.check(foldUsername(principal.username), client.ip);
      if (refused !== undefined) {
        throw new RunnelError(
          "too_many_attempts",
          `too many wrong passwords; try again in ${refused.retryAfterSeconds} s`,
          {
            retryAfter: refused.retryAfterSeconds,
          },
        );
      }
      const user = await control.getUserByUsername(principal.username);
      if (!user || !(await passwords.verify(request.body.current, user.passwordHash))) {
        throttle.fail(foldUsername(principal.username), client.ip);
        if (user) await control.recordActivity(user.id, "password_change_failed", { ...client });
        throw new RunnelError("forbidden", "the current password is wrong");
      }
      const updated = await control.updateUser(user.id, { passwordHash: await passwords.hash(request.body.next) });
      await control.recordActivity(user.id, "password_changed", { ...client });
      // Every earlier token is now revoked; hand back a fresh one.
      const token = await tokens.issue({ userId: updated.id, version: updated.tokenVersion });
      return { token, expiresIn: tokens.ttlSeconds };
    },
  );

  app.get("/me/settings", { config: signedIn }, async (request) => {
    const principal = await principalOf(request, services);
    return { settings: await control.getSettings(principal.userId) };
  });

  app.put<{ Body: Record<string, unknown> }>(
    "/me/settings",
    { config: signedIn, schema: { body: { type: "object" } } },
    async (request) => {
      const principal = await principalOf(request, services);
      if (JSON.stringify(request.body).length > 64 * 1024) {
        throw new RunnelError("payload_too_large", "settings are limited to 64 KiB");
      }
      await control.putSettings(principal.userId, request.body);
      await control.recordActivity(principal.userId, "settings_changed", { ...clientOf(request) });
      return { settings: request.body };
    },
  );

  app.get<{ Querystring: { limit?: string; before?: string } }>(
    "/me/activity",
    { config: signedIn, schema: { querystring: activityQuery } },
    async (request) => activityPage((await principalOf(request, services)).userId, request.query),
  );

  // API keys.
  app.post<{ Body: { name: string; role?: Role } }>(
    "/api-keys",
    {
      config: signedIn,
      schema: {
        body: {
          type: "object",
          additionalProperties: false,
          required: ["name"],
          properties: {
            name: { type: "string", minLength: 1, maxLength: 128 },
            role: { type: "string", enum: [...ROLES] },
          },
        },
      },
    },
    async (request, reply) => {
      const principal = await principalOf(request, services);
      const role = keyRoleFor(principal, request.body.role);
      if (principal.credential === "api_key" && principal.role !== "admin") {
        throw new RunnelError("forbidden", "API keys are created with a login token");
      }
      keyCreations.take(`user:${principal.userId}`, `ip:${request.ip}`);
      const generated = generateApiKey();
      const key = await control.createApiKey({
        userId: principal.userId,
        name: request.body.name,
        role,
        prefix: generated.prefix,
        keyHash: generated.keyHash,
      });
      await control.recordActivity(principal.userId, "api_key_created", { id: key.id, name: key.name, role });
      return reply.status(201).send({ ...key, key: generated.key });
    },
  );

  app.get("/api-keys", { config: signedIn }, async (request) => {
    const principal = await principalOf(request, services);
    return { keys: await control.listApiKeys(principal.userId) };
  });

  app.delete<{ Params: { id: string } }>(
    "/api-keys/:id",
    {
      config: signedIn,
      schema: { params: { type: "object", required: ["id"], properties: { id: { type: "string", maxLength: 64 } } } },
    },
    async (request, reply) => {
      const principal = await principalOf(request, services);
      if (!(await control.deleteApiKey(principal.userId, request.params.id))) {
        throw new RunnelError("not_found", "no such API key");
      }
      await control.recordActivity(principal.userId, "api_key_deleted", { id: request.params.id });
      return reply.status(204).send();
    },
  );

  // Admin: users.
  app.get("/users", { config: admins }, async () => {
    return { users: (await control.listUsers()).map(publicUser) };
  });

  app.post<{ Body: { username: string; email: string; password: string; role: Role } }>(
    "/users",
    {
      config: admins,
      preValidation: normaliseUsername,
      schema: {
        body: {
          ...credentialsSchema,
          required: [...credentialsSchema.required, "role"],
          properties: { ...credentialsSchema.properties, role: { type: "string", enum: [...ROLES] } },
        },
      },
    },
    async (request, reply) => {
      const admin = await principalOf(request, services);
      const { username, email, password, role } = request.body;
      const user = await control.createUser({ username, email, passwordHash: await passwords.hash(password), role });
      await control.recordActivity(admin.userId, "user_created", { username, role });
      return reply.status(201).send({ user: publicUser(user) });
    },
  );

  app.patch<{ Params: { username: string }; Body: { role?: Role; disabled?: boolean } }>(
    "/users/:username",
    {
      config: admins,
      schema: {
        params: usernameParams,
        body: {
          type: "object",
          additionalProperties: false,
          minProperties: 1,
          properties: { role: { type: "string", enum: [...ROLES] }, disabled: { type: "boolean" } },
        },
      },
    },
    async (request) => {
      const admin = await principalOf(request, services);
      const user = await control.getUserByUsername(request.params.username);
      if (!user) throw new RunnelError("not_found", `no user "${request.params.username}"`);
      const losesAdmin =
        user.role === "admin" && (request.body.disabled === true || (request.body.role ?? "admin") !== "admin");
      if (losesAdmin && !user.disabled && (await control.countAdmins()) <= 1) {
        throw new RunnelError("conflict", "the last admin cannot be demoted or disabled");
      }
      const updated = await control.updateUser(user.id, request.body);
      await control.recordActivity(user.id, "account_changed_by_admin", { by: admin.username, ...request.body });
      return { user: publicUser(updated) };
    },
  );

  app.get<{ Params: { username: string }; Querystring: { limit?: string; before?: string } }>(
    "/users/:username/activity",
    { config: admins, schema: { params: usernameParams, querystring: activityQuery } },
    async (request) => {
      const user = await control.getUserByUsername(request.params.username);
      if (!user) throw new RunnelError("not_found", `no user "${request.params.username}"`);
      return activityPage(user.id, request.query);
    },
  );

  app.delete<{ Params: { username: string } }>(
    "/users/:username",
    { config: admins, schema: { params: usernameParams } },
    async (request, reply) => {
      const admin = await principalOf(request, services);
      const user = await control.getUserByUsername(request.params.username);
      if (!user) throw new RunnelError("not_found", `no user "${request.params.username}"`);
      if (user.role === "admin" && !user.disabled && (await control.countAdmins()) <= 1) {
        throw new RunnelError("conflict", "the last admin cannot be deleted");
      }
      await control.deleteUser(user.id);
      // Kept under both ids: the admin's own trail, and the deleted account's, which outlives it.
      await control.recordActivity(admin.userId, "user_deleted", { username: user.username });
      await control.recordActivity(user.id, "account_deleted", { by: admin.username });
      return reply.status(204).send();
    },
  );
}
