/** The dashboard's shell: session, navigation by role, and the page for the current path. */
import { render } from "preact";
import { useEffect, useState } from "preact/hooks";
import { currentSession, hasRole, onSession, type Session, setSession } from "./api";
import { AccountPage } from "./pages/account";
import { AlertsPage } from "./pages/alerts";
import { LoginPage } from "./pages/login";
import { OverviewPage } from "./pages/overview";
import { PipelinesPage } from "./pages/pipelines";
import { QueryPage } from "./pages/query";
import { ReviewPage } from "./pages/review";
import { RulesPage } from "./pages/rules";
import { StreamsPage } from "./pages/streams";
import { UsersPage } from "./pages/users";
import { navigate, onLinkClick, useLocation } from "./router";
import "./style.css";
import type { Role } from "./types";

interface NavItem {
  readonly path: string;
  readonly label: string;
  readonly roles?: readonly Role[];
}

const NAV: readonly NavItem[] = [
  { path: "/", label: "Overview" },
  { path: "/streams", label: "Streams" },
  { path: "/query", label: "Query" },
  { path: "/alerts", label: "Alerts" },
  { path: "/review", label: "Review", roles: ["admin"] },
  { path: "/rules", label: "Rules", roles: ["admin", "analyst"] },
  { path: "/pipelines", label: "Pipelines", roles: ["admin", "analyst"] },
  { path: "/account", label: "Account" },
  { path: "/admin/users", label: "Users", roles: ["admin"] },
];

function Page({ path }: { path: string }) {
  if (path === "/") return <OverviewPage />;
  if (path === "/streams" || path.startsWith("/streams/")) {
    const name = path.split("/")[2];
    return <StreamsPage {...(name !== undefined && name !== "" && { tail: decodeURIComponent(name) })} />;
  }
  if (path === "/query") return <QueryPage />;
  if (path === "/alerts") return <AlertsPage />;
  if (path === "/review") return <ReviewPage />;
  if (path === "/rules") return <RulesPage />;
  if (path === "/pipelines") return <PipelinesPage />;
  if (path === "/account") return <AccountPage />;
  if (path === "/admin/users") return <UsersPage />;
  return (
    <section>
      <h1>Not found</h1>
      <p>
        No page at <code>{path}</code>. <a href="/">Back to the overview</a>.
      </p>
    </section>
  );
}

function App() {
  const [session, setLocal] = useState<Session | undefined>(currentSession());
  const path = useLocation();
  useEffect(() => onSession(setLocal), []);

  if (!session) {
    if (path !== "/login" && path !== "/signup") navigate("/login");
    return <LoginPage mode={path === "/signup" ? "signup" : "login"} />;
  }
  if (path === "/login" || path === "/signup") navigate("/");
  const items = NAV.filter((n) => n.roles === undefined || hasRole(...n.roles));
  return (
    <div class="layout">
      <nav class="sidebar" aria-label="Main">
        <div class="brand">Runnel</div>
        {items.map((n) => (
          <a
            key={n.path}
            href={n.path}
            class={(n.path === "/" ? path === "/" : path.startsWith(n.path)) ? "active" : ""}
          >
            {n.label}
          </a>
        ))}
        <div class="whoami" data-testid="whoami">
          {session.user.username} <span class="badge">{session.user.role}</span>
          <button
            type="button"
            class="link"
            onClick={() => {
              setSession(undefined);
              navigate("/login");
            }}
          >
            Sign out
          </button>
        </div>
      </nav>
      <main>
        <Page path={path} />
      </main>
    </div>
  );
}

document.addEventListener("click", onLinkClick);
render(<App />, document.getElementById("app")!);
