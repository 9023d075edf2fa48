/**
 * Rules (CEP): list with enable/disable/delete (admin), and a form to create one whose
 * validation errors from the API appear next to the field they name. Analysts read.
 */
import { useState } from "preact/hooks";
import { api, get, hasRole } from "../api";
import { Field, fieldOf } from "../form";
import type { Rule } from "../types";
import { ErrorBox, Table, useLoad, when } from "../ui";

const FIELDS = ["name", "stream", "key", "pattern", "within", "skip", "actions"] as const;
const EXAMPLE_PATTERN = `[
  { "name": "large", "where": "amount > 500", "times": { "min": 4 } }
]`;
const EXAMPLE_ACTIONS = `[ { "type": "alert", "severity": "high" }, { "type": "block" } ]`;

export function RulesPage() {
  const rules = useLoad(() => get<{ rules: Rule[] }>("/rules"));
  const [error, setError] = useState<unknown>(undefined);
  const admin = hasRole("admin");
  const act = async (f: () => Promise<unknown>) => {
    try {
      setError(undefined);
      await f();
      rules.reload();
    } catch (e) {
      setError(e);
    }
  };
  return (
    <section>
      <h1>Rules</h1>
      <ErrorBox error={rules.error ?? error} />
      <Table
        testId="rules"
        head={["Name", "Stream", "Within", "Enabled", "Created", ...(admin ? [""] : [])]}
        rows={(rules.data?.rules ?? []).map((r) => [
          r.name,
          r.stream,
          String(r.spec.within ?? ""),
          r.enabled ? "yes" : "no",
          when(r.createdAt),
          ...(admin
            ? [
                <span class="row">
                  <button
                    type="button"
                    class="secondary"
                    onClick={() => act(() => api("PATCH", `/rules/${r.id}`, { enabled: !r.enabled }))}
                  >
                    {r.enabled ? "Disable" : "Enable"}
                  </button>
                  <button
                    type="button"
                    class="danger"
                    onClick={() => confirm(`Delete rule ${r.name}?`) && act(() => api("DELETE", `/rules/${r.id}`))}
                  >
                    Delete
                  </button>
                </span>,
              ]
            : []),
        ])}
      />
      {admin ? <CreateRule onCreated={rules.reload} /> : null}
    </section>
  );
}

function CreateRule({ onCreated }: { onCreated: () => void }) {
  const [v, setV] = useState<Record<(typeof FIELDS)[number], string>>({
    name: "",
    stream: "",
    key: "user_id",
    pattern: EXAMPLE_PATTERN,
    within: "5m",
    skip: "past_last_event",
    actions: EXAMPLE_ACTIONS,
  });
  const [error, setError] = useState<unknown>(undefined);
  const [errorField, setErrorField] = useState("");
  const set = (k: (typeof FIELDS)[number]) => (e: Event) =>
    setV({ ...v, [k]: (e.currentTarget as HTMLInputElement | HTMLTextAreaElement).value });

  const submit = async (e: Event) => {
    e.preventDefault();
    setError(undefined);
    setErrorField("");
    let pattern: unknown;
    let actions: unknown;
    try {
      pattern = JSON.parse(v.pattern);
    } catch (err) {
      setError(new Error(`not JSON: ${(err as Error).message}`));
      setErrorField("pattern");
      return;
    }
    try {
      actions = JSON.parse(v.actions);
    } catch (err) {
      setError(new Error(`not JSON: ${(err as Error).message}`));
      setErrorField("actions");
      return;
    }
    try {
      await api("POST", "/rules", {
        name: v.name,
        stream: v.stream,
        key: v.key,
        pattern,
        ...(v.within !== "" && { within: v.within }),
        ...(v.skip !== "" && { skip: v.skip }),
        actions,
      });
      onCreated();
      setV({ ...v, name: "" });
    } catch (err) {
      setError(err);
      setErrorField(fieldOf(err, FIELDS));
    }
  };

  const props = { error, errorField };
  return (
    <form class="card form" onSubmit={submit} aria-label="Create a rule" data-testid="rule-form">
      <h2>Create a rule</h2>
      <Field label="Name" name="name" {...props}>
        <input name="name" value={v.name} onInput={set("name")} />
      </Field>
      <Field label="Stream" name="stream" {...props}>
        <input name="stream" value={v.stream} onInput={set("stream")} />
      </Field>
      <Field label="Key" name="key" {...props}>
        <input name="key" value={v.key} onInput={set("key")} />
      </Field>
      <Field label="Pattern (JSON steps)" name="pattern" {...props}>
        <textarea name="pattern" rows={5} spellcheck={false} value={v.pattern} onInput={set("pattern")} />
      </Field>
      <Field label="Within" name="within" {...props}>
        <input name="within" value={v.within} onInput={set("within")} />
      </Field>
      <Field label="Skip" name="skip" {...props}>
        <input name="skip" value={v.skip} onInput={set("skip")} />
      </Field>
      <Field label="Actions (JSON)" name="actions" {...props}>
        <textarea name="actions" rows={2} spellcheck={false} value={v.actions} onInput={set("actions")} />
      </Field>
      {errorField === "" ? <ErrorBox error={error} /> : null}
      <button type="submit">Create rule</button>
    </form>
  );
}
