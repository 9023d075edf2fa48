/** Sign in and sign up (POST /auth/login, /auth/signup). */
import { useState } from "preact/hooks";
import { api, setSession } from "../api";
import { navigate } from "../router";
import type { User } from "../types";
import { ErrorBox } from "../ui";

export function LoginPage({ mode }: { mode: "login" | "signup" }) {
  const [username, setUsername] = useState("");
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const [error, setError] = useState<unknown>(undefined);
  const [busy, setBusy] = useState(false);

  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      if (mode === "signup") await api("POST", "/auth/signup", { username, email, password });
      const res = await api<{ token: string; user: User }>("POST", "/auth/login", { username, password });
      setSession({ token: res.token, user: res.user });
      navigate("/");
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  return (
    <div class="login">
      <form class="card" onSubmit={submit} aria-label={mode === "login" ? "Sign in" : "Sign up"}>
        <h1>Runnel</h1>
        <h2>{mode === "login" ? "Sign in" : "Create an account"}</h2>
        <label>
          Username
          <input
            name="username"
            autoComplete="username"
            value={username}
            onInput={(e) => setUsername(e.currentTarget.value)}
            required
          />
        </label>
        {mode === "signup" ? (
          <label>
            Email
            <input name="email" type="email" value={email} onInput={(e) => setEmail(e.currentTarget.value)} required />
          </label>
        ) : null}
        <label>
          Password
          <input
            name="password"
            type="password"
            autoComplete={mode === "login" ? "current-password" : "new-password"}
            value={password}
            onInput={(e) => setPassword(e.currentTarget.value)}
            required
          />
        </label>
        <ErrorBox error={error} />
        <button type="submit" disabled={busy}>
          {mode === "login" ? "Sign in" : "Sign up"}
        </button>
        <p class="muted">
          {mode === "login" ? (
            <>
              No account? <a href="/signup">Sign up</a>
            </>
          ) : (
            <>
              Have an account? <a href="/login">Sign in</a>
            </>
          )}
        </p>
      </form>
    </div>
  );
}
