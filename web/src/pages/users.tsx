/** Admin: every user, with role changes, disable/enable, delete, and creating a user. */
import { useState } from "preact/hooks";
import { api, get } from "../api";
import type { Role, User } from "../types";
import { ErrorBox, Table, useAction, useLoad, when } from "../ui";

const ROLES: readonly Role[] = ["admin", "analyst", "user", "service"];

export function UsersPage() {
  const users = useLoad(() => get<{ users: User[] }>("/users"));
  const { error, act } = useAction(users.reload);
  const path = (u: User) => `/users/${encodeURIComponent(u.username)}`;
  return (
    <section>
      <h1>Users</h1>
      <ErrorBox error={users.error ?? error} />
      <Table
        testId="users"
        head={["User", "Email", "Role", "State", "Created", ""]}
        rows={(users.data?.users ?? []).map((u) => [
          u.username,
          u.email,
          <select
            aria-label={`Role of ${u.username}`}
            value={u.role}
            onChange={(e) => act(() => api("PATCH", path(u), { role: e.currentTarget.value }))}
          >
            {ROLES.map((r) => (
              <option key={r} value={r}>
                {r}
              </option>
            ))}
          </select>,
          u.disabled ? "disabled" : "active",
          when(u.createdAt),
          <span class="row">
            <button
              type="button"
              class="secondary"
              onClick={() => act(() => api("PATCH", path(u), { disabled: !u.disabled }))}
            >
              {u.disabled ? "Enable" : "Disable"}
            </button>
            <button
              type="button"
              class="danger"
              onClick={() =>
                confirm(`Delete ${u.username}? Their events are kept.`) && act(() => api("DELETE", path(u)))
              }
            >
              Delete
            </button>
          </span>,
        ])}
      />
      <CreateUser onCreated={users.reload} />
    </section>
  );
}

function CreateUser({ onCreated }: { onCreated: () => void }) {
  const [v, setV] = useState({ username: "", email: "", password: "", role: "user" });
  const [error, setError] = useState<unknown>(undefined);
  return (
    <form
      class="card form"
      aria-label="Create a user"
      onSubmit={async (e) => {
        e.preventDefault();
        try {
          await api("POST", "/users", v);
          setV({ username: "", email: "", password: "", role: "user" });
          setError(undefined);
          onCreated();
        } catch (err) {
          setError(err);
        }
      }}
    >
      <h2>Create a user</h2>
      <div class="row">
        <input
          aria-label="Username"
          placeholder="username"
          value={v.username}
          onInput={(e) => setV({ ...v, username: e.currentTarget.value })}
        />
        <input
          aria-label="Email"
          placeholder="email"
          value={v.email}
          onInput={(e) => setV({ ...v, email: e.currentTarget.value })}
        />
        <input
          aria-label="Password"
          type="password"
          placeholder="password"
          value={v.password}
          onInput={(e) => setV({ ...v, password: e.currentTarget.value })}
        />
        <select aria-label="Role" value={v.role} onChange={(e) => setV({ ...v, role: e.currentTarget.value })}>
          {ROLES.map((r) => (
            <option key={r} value={r}>
              {r}
            </option>
          ))}
        </select>
        <button type="submit">Create</button>
      </div>
      <ErrorBox error={error} />
    </form>
  );
}
