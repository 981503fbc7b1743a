// Forms from a list of fields; submit runs an async action and shows its error (the API's
// reason) or a confirmation under the form.
//
//   form({ id: "declare-queue", submit: "Add queue", fields: [
//     { name: "name", label: "Name", required: true },
//     { name: "durable", label: "Durable", type: "checkbox", value: true },
//     { name: "arguments", label: "Arguments", type: "json" } ],
//     onSubmit: async (values) => ... })

import { h, message } from "./dom.js";

function input(id, field) {
  const common = { id, name: field.name, required: field.required };
  switch (field.type) {
    case "checkbox":
      return h("input", { ...common, type: "checkbox", checked: field.value });
    case "select":
      return h("select", common, (field.options || []).map((o) => {
        const [value, label] = Array.isArray(o) ? o : [o, o];
        return h("option", { value, selected: value === field.value }, label);
      }));
    case "textarea":
    case "json":
      return h("textarea", { ...common, rows: field.rows || 3,
        placeholder: field.placeholder || (field.type === "json" ? '{"x-max-length": 1000}' : "") },
      field.value ?? "");
    case "file":
      return h("input", { ...common, type: "file", accept: field.accept });
    default:
      return h("input", { ...common, type: field.type || "text", value: field.value ?? "",
        placeholder: field.placeholder, autocomplete: field.autocomplete || "off" });
  }
}

function read(el, field) {
  if (field.type === "checkbox") return el.checked;
  if (field.type === "number") return el.value === "" ? undefined : Number(el.value);
  if (field.type === "file") return el.files[0];
  if (field.type === "json") {
    if (el.value.trim() === "") return {};
    try {
      return JSON.parse(el.value);
    } catch {
      throw new Error(`${field.label}: not valid JSON`);
    }
  }
  return el.value;
}

export function form({ id, fields, submit, onSubmit, reset = false }) {
  const inputs = fields.map((f) => [f, input(`${id}-${f.name}`, f)]);
  const status = h("div", { class: "form-status", id: `${id}-status` });
  const el = h("form", { id, class: "form" },
    inputs.map(([f, i]) => h("div", { class: `field ${f.type || "text"}` },
      h("label", { for: i.id }, f.label), i, f.help ? h("small", {}, f.help) : null)),
    h("div", { class: "actions" }, h("button", { type: "submit", id: `${id}-submit` }, submit)),
    status);
  el.addEventListener("submit", async (event) => {
    event.preventDefault();
    message(status, "");
    try {
      const values = {};
      for (const [f, i] of inputs) values[f.name] = read(i, f);
      const note = await onSubmit(values);
      message(status, note || "Done.", "ok");
      if (reset) el.reset();
    } catch (error) {
      message(status, error.message, "error");
    }
  });
  return el;
}

// A button that asks first (for deletes, purges, force-close), then runs the action.
export function dangerButton({ id, label, question, onClick, status }) {
  return h("button", { type: "button", id, class: "danger", onclick: async () => {
    if (question && !window.confirm(question)) return;
    try {
      const note = await onClick();
      if (status) message(status, note || "Done.", "ok");
    } catch (error) {
      if (status) message(status, error.message, "error");
      else window.alert(error.message);
    }
  } }, label);
}

export function vhostField(vhosts, value) {
  return { name: "vhost", label: "Virtual host", type: "select",
    options: vhosts.map((v) => v.name), value: value ?? (vhosts[0] && vhosts[0].name) };
}
