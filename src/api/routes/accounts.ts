/** Accounts and credentials (API.md): signup, login, the caller's profile, settings, activity, API keys, and admin user management. */
import type { FastifyInstance, FastifyRequest } from "fastify";
import { generateApiKey } from "../../control/api-keys.js";
import { ROLES, type Role, type User } from "../../control/types.js";
import { RunnelError } from "../../core/errors.js";
import { principalOf } from "../app.js";
import { requireRole } from "../auth/authenticate.js";
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

function clientOf(request: FastifyRequest): Record<string, unknown> {
  return { ip: request.ip, userAgent: request.headers["user-agent"] ?? null };
}

export function registerAccountRoutes(app: FastifyInstance, services: ApiServices): void {
  const { control, passwords, tokens } = services;

  app.post<{ Body: { username: string; email: string; password: string } }>(
    "/auth/signup",
    { schema: { body: credentialsSchema } },
    async (request, reply) => {
      const { username, email, password } = request.body;
      const user = await control.createUser({
        username,
        email,
        passwordHash: await passwords.hash(password),
        role: "user",
      });
      await control.recordActivity(user.id, "signup", clientOf(request));
      return reply.status(201).send({ user: publicUser(user) });
    },
  );

  app.post<{ Body: { username: string; password: string } }>(
    "/auth/login",
    {
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
      const user = await control.getUserByUsername(username);
      // Verify against a real hash even for unknown users so timing does not reveal which usernames exist.
      const ok = user ? await passwords.verify(password, user.passwordHash) : await passwords.verifyNone(password);
      if (!user || !ok || user.disabled) {
        if (user) await control.recordActivity(user.id, "login_failed", clientOf(request));
        throw new RunnelError("unauthorized", "wrong username or password");
      }
      await control.recordActivity(user.id, "login", clientOf(request));
      const token = await tokens.issue({ userId: user.id, version: user.tokenVersion });
      return { token, expiresIn: tokens.ttlSeconds, user: publicUser(user) };
    },
  );

  app.get("/me", async (request) => {
    const principal = await principalOf(request, services);
    const user = await control.getUserById(principal.userId);
    if (!user) throw new RunnelError("unauthorized", "the account no longer exists");
    return { user: publicUser(user), role: principal.role, credential: principal.credential };
  });

  app.patch<{ Body: { email: string } }>(
    "/me",
    {
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
      await control.recordActivity(principal.userId, "email_changed", clientOf(request));
      return { user: publicUser(user) };
    },
  );

  app.post<{ Body: { current: string; next: string } }>(
    "/me/password",
    {
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
      const user = await control.getUserByUsername(principal.username);
      if (!user || !(await passwords.verify(request.body.current, user.passwordHash))) {
        throw new RunnelError("forbidden", "the current password is wrong");
      }
      const updated = await control.updateUser(user.id, { passwordHash: await passwords.hash(request.body.next) });
      await control.recordActivity(user.id, "password_changed", clientOf(request));
      // Every earlier token is now revoked; hand back a fresh one.
      const token = await tokens.issue({ userId: updated.id, version: updated.tokenVersion });
      return { token, expiresIn: tokens.ttlSeconds };
    },
  );

  app.get("/me/settings", async (request) => {
    const principal = await principalOf(request, services);
    return { settings: await control.getSettings(principal.userId) };
  });

  app.put<{ Body: Record<string, unknown> }>(
    "/me/settings",
    { schema: { body: { type: "object" } } },
    async (request) => {
      const principal = await principalOf(request, services);
      if (JSON.stringify(request.body).length > 64 * 1024) {
        throw new RunnelError("payload_too_large", "settings are limited to 64 KiB");
      }
      await control.putSettings(principal.userId, request.body);
      await control.recordActivity(principal.userId, "settings_changed", clientOf(request));
      return { settings: request.body };
    },
  );

  app.get<{ Querystring: { limit?: string; before?: string } }>(
    "/me/activity",
    {
      schema: {
        querystring: {
          type: "object",
          additionalProperties: false,
          properties: { limit: { type: "string", pattern: "^[0-9]{1,3}$" }, before: { type: "string", maxLength: 32 } },
        },
      },
    },
    async (request) => {
      const principal = await principalOf(request, services);
      const limit = request.query.limit === undefined ? undefined : Number(request.query.limit);
      const activity = await control.listActivity(principal.userId, {
        ...(limit !== undefined && { limit }),
        ...(request.query.before !== undefined && { before: request.query.before }),
      });
      return { activity };
    },
  );

  // API keys.
  app.post<{ Body: { name: string; role?: Role } }>(
    "/api-keys",
    {
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
      const role = request.body.role ?? (principal.role === "admin" ? "admin" : principal.role);
      if (role !== principal.role && principal.role !== "admin") {
        throw new RunnelError("forbidden", `only an admin may create ${role} keys`);
      }
      if (principal.credential === "api_key" && principal.role !== "admin") {
        throw new RunnelError("forbidden", "API keys are created with a login token");
      }
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

  app.get("/api-keys", async (request) => {
    const principal = await principalOf(request, services);
    return { keys: await control.listApiKeys(principal.userId) };
  });

  app.delete<{ Params: { id: string } }>("/api-keys/:id", async (request, reply) => {
    const principal = await principalOf(request, services);
    if (!(await control.deleteApiKey(principal.userId, request.params.id))) {
      throw new RunnelError("not_found", "no such API key");
    }
    await control.recordActivity(principal.userId, "api_key_deleted", { id: request.params.id });
    return reply.status(204).send();
  });

  // Admin: users.
  app.get("/users", async (request) => {
    requireRole(await principalOf(request, services), "admin");
    return { users: (await control.listUsers()).map(publicUser) };
  });

  app.post<{ Body: { username: string; email: string; password: string; role: Role } }>(
    "/users",
    {
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
      requireRole(admin, "admin");
      const { username, email, password, role } = request.body;
      const user = await control.createUser({ username, email, passwordHash: await passwords.hash(password), role });
      await control.recordActivity(admin.userId, "user_created", { username, role });
      return reply.status(201).send({ user: publicUser(user) });
    },
  );

  app.patch<{ Params: { username: string }; Body: { role?: Role; disabled?: boolean } }>(
    "/users/:username",
    {
      schema: {
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
      requireRole(admin, "admin");
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

  app.delete<{ Params: { username: string } }>("/users/:username", async (request, reply) => {
    const admin = await principalOf(request, services);
    requireRole(admin, "admin");
    const user = await control.getUserByUsername(request.params.username);
    if (!user) throw new RunnelError("not_found", `no user "${request.params.username}"`);
    if (user.role === "admin" && !user.disabled && (await control.countAdmins()) <= 1) {
      throw new RunnelError("conflict", "the last admin cannot be deleted");
    }
    await control.deleteUser(user.id);
    await control.recordActivity(admin.userId, "user_deleted", { username: user.username });
    return reply.status(204).send();
  });
}
