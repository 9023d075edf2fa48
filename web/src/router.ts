/** History-API routing: the server answers index.html for every dashboard path (src/api/routes/web.ts). */
import { useEffect, useState } from "preact/hooks";

const listeners = new Set<() => void>();

export function navigate(to: string): void {
  if (to === location.pathname + location.search) return;
  history.pushState(null, "", to);
  for (const l of listeners) l();
}

addEventListener("popstate", () => {
  for (const l of listeners) l();
});

export function useLocation(): string {
  const [path, setPath] = useState(location.pathname);
  useEffect(() => {
    const update = () => setPath(location.pathname);
    listeners.add(update);
    return () => listeners.delete(update);
  }, []);
  return path;
}

/** Same-origin link clicks go through navigate() instead of reloading the page. */
export function onLinkClick(e: MouseEvent): void {
  const target = e.target instanceof Element ? e.target.closest("a") : null;
  if (!target || target.origin !== location.origin || target.target === "_blank") return;
  if (e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  e.preventDefault();
  navigate(target.pathname + target.search);
}
