/**
 * Rules (CEP): list with enable/disable/edit/delete (admin), and a form to create a rule or
 * change one in place (PUT, fields the form does not show kept), whose validation errors from
 * the API appear next to the field they name. Analysts read.
 */
import { useState } from "preact/hooks";
import { api, get, hasRole } from "../api";
import { ConsumerState } from "../consumer-state";
import { Field, fieldOf } from "../form";
import type { Rule } from "../types";
import { ErrorBox, Table, useAction, useLoad, when } from "../ui";

const FIELDS = ["name", "stream", "key", "pattern", "within", "skip", "actions"] as const;
const EXAMPLE_PATTERN = `[
  { "name": "large", "where": "amount > 500", "times": { "min": 4 } }
]`;
const EXAMPLE_ACTIONS = `[ { "type": "alert", "severity": "high" }, { "type": "block" } ]`;

export function RulesPage() {
  const rules = useLoad(() => get<{ rules: Rule[] }>("/rules"));
  const { error, act } = useAction(rules.reload);
  const [editing, setEditing] = useState<Rule | undefined>(undefined);
  const admin = hasRole("admin");
  return (
    <section>
      <h1>Rules</h1>
      <ErrorBox error={rules.error ?? error} />
      <Table
        testId="rules"
        head={["Name", "Stream", "Within", "Enabled", "State", "Created", ...(admin ? [""] : [])]}
        rows={(rules.data?.rules ?? []).map((r) => [
          r.name,
          r.stream,
          String(r.spec.within ?? ""),
          r.enabled ? "yes" : "no",
          r.enabled ? <ConsumerState stats={r.stats} /> : "",
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
                  <button type="button" class="secondary" onClick={() => setEditing(r)}>
                    Edit
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
      {admin ? (
        <RuleForm
          key={editing?.id ?? "new"}
          editing={editing}
          onDone={() => {
            setEditing(undefined);
            rules.reload();
          }}
        />
      ) : null}
    </section>
  );
}

type FormValues = Record<(typeof FIELDS)[number], string>;

const NEW_RULE: FormValues = {
  name: "",
  stream: "",
  key: "user_id",
  pattern: EXAMPLE_PATTERN,
  within: "5m",
  skip: "past_last_event",
  actions: EXAMPLE_ACTIONS,
};

function valuesOf(rule: Rule): FormValues {
  const text = (x: unknown) => (x === undefined ? "" : String(x));
  return {
    name: rule.name,
    stream: rule.stream,
    key: text(rule.spec.key ?? "user_id"),
    pattern: JSON.stringify(rule.spec.pattern ?? [], null, 2),
    within: text(rule.spec.within),
    skip: text(rule.spec.skip),
    actions: JSON.stringify(rule.spec.actions ?? []),
  };
}

/** Creates a rule, or with `editing` changes that one (PUT; its other fields and its enabled state stay). */
function RuleForm({ editing, onDone }: { editing: Rule | undefined; onDone: () => void }) {
  const [v, setV] = useState<FormValues>(editing === undefined ? NEW_RULE : valuesOf(editing));
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
    const shown = { name: v.name, stream: v.stream, key: v.key, pattern, actions };
    try {
      if (editing === undefined) {
        await api("POST", "/rules", {
          ...shown,
          ...(v.within !== "" && { within: v.within }),
          ...(v.skip !== "" && { skip: v.skip }),
        });
        setV({ ...v, name: "" });
      } else {
        // The rule's other fields (lateness, onTimeout, …) go back as they were; a field emptied here is removed.
        const { enabled: _enabled, within: _within, skip: _skip, ...kept } = editing.spec;
        await api("PUT", `/rules/${editing.id}`, {
          ...kept,
          ...shown,
          ...(v.within !== "" && { within: v.within }),
          ...(v.skip !== "" && { skip: v.skip }),
        });
      }
      onDone();
    } catch (err) {
      setError(err);
      setErrorField(fieldOf(err, FIELDS));
    }
  };

  const props = { error, errorField };
  return (
    <form
      class="card form"
      onSubmit={submit}
      aria-label={editing === undefined ? "Create a rule" : "Edit a rule"}
      data-testid="rule-form"
    >
      <h2>{editing === undefined ? "Create a rule" : `Edit rule ${editing.name}`}</h2>
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
      <span class="row">
        <button type="submit">{editing === undefined ? "Create rule" : "Save changes"}</button>
        {editing === undefined ? null : (
          <button type="button" class="secondary" onClick={onDone}>
            Cancel
          </button>
        )}
      </span>
    </form>
  );
}
