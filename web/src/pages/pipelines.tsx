/**
 * Pipelines: continuous queries into new streams; list (admin, analyst), create, enable/disable
 * (resumes where it stopped) and delete (admin).
 */
import { useState } from "preact/hooks";
import { api, get, hasRole } from "../api";
import { ConsumerState } from "../consumer-state";
import { Field, fieldOf } from "../form";
import type { Pipeline } from "../types";
import { ErrorBox, Table, useAction, useLoad, when } from "../ui";

const FIELDS = ["name", "sql", "startFrom"] as const;

export function PipelinesPage() {
  const pipelines = useLoad(() => get<{ pipelines: Pipeline[] }>("/pipelines"));
  const { error, act } = useAction(pipelines.reload);
  const admin = hasRole("admin");
  return (
    <section>
      <h1>Pipelines</h1>
      <ErrorBox error={pipelines.error ?? error} />
      <Table
        testId="pipelines"
        head={["Name", "Kind", "SQL", "Output", "Enabled", "State", "Created", ...(admin ? [""] : [])]}
        rows={(pipelines.data?.pipelines ?? []).map((p) => [
          p.name,
          p.kind ?? "",
          <code>{p.sql}</code>,
          p.output,
          p.enabled ? "yes" : "no",
          p.enabled ? <ConsumerState stats={p.stats} /> : "",
          when(p.createdAt),
          ...(admin
            ? [
                <span class="row">
                  <button
                    type="button"
                    class="secondary"
                    onClick={() =>
                      act(() => api("PATCH", `/pipelines/${encodeURIComponent(p.name)}`, { enabled: !p.enabled }))
                    }
                  >
                    {p.enabled ? "Disable" : "Enable"}
                  </button>
                  <button
                    type="button"
                    class="danger"
                    onClick={() =>
                      confirm(`Delete pipeline ${p.name} and its stream?`) &&
                      act(() => api("DELETE", `/pipelines/${encodeURIComponent(p.name)}`))
                    }
                  >
                    Delete
                  </button>
                </span>,
              ]
            : []),
        ])}
      />
      {admin ? <CreatePipeline onCreated={pipelines.reload} /> : null}
    </section>
  );
}

function CreatePipeline({ onCreated }: { onCreated: () => void }) {
  const [name, setName] = useState("");
  const [sql, setSql] = useState("SELECT user_id, amount FROM transactions WHERE amount > 100");
  const [startFrom, setStartFrom] = useState<"now" | "earliest">("now");
  const [error, setError] = useState<unknown>(undefined);
  const [errorField, setErrorField] = useState("");
  const submit = async (e: Event) => {
    e.preventDefault();
    setError(undefined);
    setErrorField("");
    try {
      await api("POST", "/pipelines", { name, sql, startFrom });
      setName("");
      onCreated();
    } catch (err) {
      setError(err);
      // The SQL compiler's messages do not name a field: they are about the SQL.
      const field = fieldOf(err, FIELDS);
      setErrorField(field === "" && /sql|SELECT|column|table|window/i.test((err as Error).message) ? "sql" : field);
    }
  };
  const props = { error, errorField };
  return (
    <form class="card form" onSubmit={submit} aria-label="Create a pipeline">
      <h2>Create a pipeline</h2>
      <Field label="Name (the output stream)" name="name" {...props}>
        <input name="name" value={name} onInput={(e) => setName(e.currentTarget.value)} />
      </Field>
      <Field label="SQL" name="sql" {...props}>
        <textarea name="sql" rows={4} spellcheck={false} value={sql} onInput={(e) => setSql(e.currentTarget.value)} />
      </Field>
      <Field label="Start from" name="startFrom" {...props}>
        <select
          name="startFrom"
          value={startFrom}
          onChange={(e) => setStartFrom(e.currentTarget.value === "earliest" ? "earliest" : "now")}
        >
          <option value="now">now</option>
          <option value="earliest">earliest</option>
        </select>
      </Field>
      {errorField === "" ? <ErrorBox error={error} /> : null}
      <button type="submit">Create pipeline</button>
    </form>
  );
}
