/** Account: profile (email), password, settings (any JSON), API keys (shown once on creation), own activity. */
import { useState } from "preact/hooks";
import { api, currentSession, get, setSession } from "../api";
import type { Activity, ApiKey, User } from "../types";
import { cell, ErrorBox, Table, useLoad, when } from "../ui";

export function AccountPage() {
  // Bumped by changes that the activity log records, so it shows them at once.
  const [version, setVersion] = useState(0);
  const changed = () => setVersion((v) => v + 1);
  return (
    <section>
      <h1>Account</h1>
      <div class="grid">
        <Profile />
        <Password />
        <Settings />
        <Keys onChange={changed} />
      </div>
      <ActivityLog version={version} />
    </section>
  );
}

function Profile() {
  const me = useLoad(() => get<{ user: User }>("/me"));
  const [email, setEmail] = useState<string | undefined>(undefined);
  const [status, setStatus] = useState<unknown>(undefined);
  const [saved, setSaved] = useState(false);
  const user = me.data?.user;
  return (
    <form
      class="card form"
      aria-label="Profile"
      onSubmit={async (e) => {
        e.preventDefault();
        setSaved(false);
        try {
          await api("PATCH", "/me", { email: email ?? user?.email });
          setStatus(undefined);
          setSaved(true);
          me.reload();
        } catch (err) {
          setStatus(err);
        }
      }}
    >
      <h2>Profile</h2>
      <ErrorBox error={me.error} />
      <p data-testid="profile">
        <strong>{user?.username}</strong> <span class="badge">{user?.role}</span>
      </p>
      <label>
        Email
        <input type="email" value={email ?? user?.email ?? ""} onInput={(e) => setEmail(e.currentTarget.value)} />
      </label>
      <ErrorBox error={status} />
      {saved ? <p class="ok">Saved.</p> : null}
      <button type="submit">Save</button>
    </form>
  );
}

function Password() {
  const [current, setCurrent] = useState("");
  const [next, setNext] = useState("");
  const [status, setStatus] = useState<unknown>(undefined);
  const [done, setDone] = useState(false);
  return (
    <form
      class="card form"
      aria-label="Password"
      onSubmit={async (e) => {
        e.preventDefault();
        setDone(false);
        try {
          // Every earlier token is revoked; the answer carries a fresh one.
          const res = await api<{ token: string }>("POST", "/me/password", { current, next });
          const s = currentSession();
          if (s) setSession({ ...s, token: res.token });
          setStatus(undefined);
          setDone(true);
          setCurrent("");
          setNext("");
        } catch (err) {
          setStatus(err);
        }
      }}
    >
      <h2>Password</h2>
      <label>
        Current password
        <input
          type="password"
          autoComplete="current-password"
          value={current}
          onInput={(e) => setCurrent(e.currentTarget.value)}
        />
      </label>
      <label>
        New password (at least 8 characters)
        <input
          type="password"
          autoComplete="new-password"
          value={next}
          onInput={(e) => setNext(e.currentTarget.value)}
        />
      </label>
      <ErrorBox error={status} />
      {done ? <p class="ok">Password changed; other sessions are signed out.</p> : null}
      <button type="submit">Change password</button>
    </form>
  );
}

function Settings() {
  const settings = useLoad(() => get<{ settings: unknown }>("/me/settings"));
  const [text, setText] = useState<string | undefined>(undefined);
  const [status, setStatus] = useState<unknown>(undefined);
  const [saved, setSaved] = useState(false);
  const shown = text ?? JSON.stringify(settings.data?.settings ?? {}, null, 2);
  return (
    <form
      class="card form"
      aria-label="Settings"
      onSubmit={async (e) => {
        e.preventDefault();
        setSaved(false);
        try {
          await api("PUT", "/me/settings", JSON.parse(shown) as unknown);
          setStatus(undefined);
          setSaved(true);
        } catch (err) {
          setStatus(err);
        }
      }}
    >
      <h2>Settings</h2>
      <ErrorBox error={settings.error} />
      <textarea rows={5} spellcheck={false} value={shown} onInput={(e) => setText(e.currentTarget.value)} />
      <ErrorBox error={status} />
      {saved ? <p class="ok">Saved.</p> : null}
      <button type="submit">Save settings</button>
    </form>
  );
}

function Keys({ onChange }: { onChange: () => void }) {
  const keys = useLoad(() => get<{ keys: ApiKey[] }>("/api-keys"));
  const [name, setName] = useState("");
  const [created, setCreated] = useState<string | undefined>(undefined);
  const [status, setStatus] = useState<unknown>(undefined);
  return (
    <div class="card">
      <h2>API keys</h2>
      <ErrorBox error={keys.error ?? status} />
      {created ? (
        <p class="ok" data-testid="new-key">
          Copy this key now; it will not be shown again: <code>{created}</code>
        </p>
      ) : null}
      <Table
        testId="keys"
        head={["Name", "Role", "Prefix", "Created", ""]}
        rows={(keys.data?.keys ?? []).map((k) => [
          k.name,
          k.role,
          <code>{k.prefix}</code>,
          when(k.createdAt),
          <button
            type="button"
            class="danger"
            onClick={async () => {
              try {
                await api("DELETE", `/api-keys/${encodeURIComponent(k.id)}`);
                keys.reload();
                onChange();
              } catch (e) {
                setStatus(e);
              }
            }}
          >
            Delete
          </button>,
        ])}
      />
      <form
        class="row"
        onSubmit={async (e) => {
          e.preventDefault();
          try {
            const res = await api<{ key: string }>("POST", "/api-keys", { name });
            setCreated(res.key);
            setName("");
            setStatus(undefined);
            keys.reload();
            onChange();
          } catch (err) {
            setStatus(err);
          }
        }}
      >
        <input
          aria-label="Key name"
          placeholder="key name"
          value={name}
          onInput={(e) => setName(e.currentTarget.value)}
        />
        <button type="submit">Create key</button>
      </form>
    </div>
  );
}

function ActivityLog({ version }: { version: number }) {
  const activity = useLoad(() => get<{ activity: Activity[] }>("/me/activity?limit=50"), [version]);
  return (
    <div>
      <h2>Your activity</h2>
      <ErrorBox error={activity.error} />
      <Table
        testId="activity"
        head={["When", "What", "Detail"]}
        rows={(activity.data?.activity ?? []).map((a) => [when(a.at), a.kind, cell(a.detail)])}
      />
    </div>
  );
}
