// Definitions: export (GET /api/definitions, saved as a file) and import (POST of a file),
// for the whole broker or one virtual host.

import { get, post, path } from "../api.js";
import { h, replace, section } from "../dom.js";
import { form, vhostField } from "../forms.js";

const ALL = "(all virtual hosts)";

function download(name, doc) {
  const blob = new Blob([JSON.stringify(doc, null, 2)], { type: "application/json" });
  const url = URL.createObjectURL(blob);
  const a = h("a", { href: url, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

export default {
  async render(main) {
    const vhosts = [{ name: ALL }, ...(await get("/api/vhosts"))];
    const url = (vhost) => (vhost === ALL ? "/api/definitions" : path("definitions", vhost));
    const exportForm = form({ id: "export-definitions", submit: "Download definitions", fields: [
      vhostField(vhosts, ALL), { name: "filename", label: "File name",
        value: `amqpbroker_${new Date().toISOString().slice(0, 10)}.json` },
    ], onSubmit: async (v) => {
      const doc = await get(url(v.vhost));
      download(v.filename || "definitions.json", doc);
      return `Exported ${(doc.queues || []).length} queues, ${(doc.exchanges || []).length} exchanges, ${(doc.bindings || []).length} bindings.`;
    } });
    const importForm = form({ id: "import-definitions", submit: "Upload definitions", fields: [
      vhostField(vhosts, ALL), { name: "file", label: "Definitions file", type: "file", accept: ".json,application/json" },
    ], onSubmit: async (v) => {
      if (!v.file) throw new Error("Choose a definitions file first.");
      let doc;
      try { doc = JSON.parse(await v.file.text()); } catch { throw new Error("The file is not JSON."); }
      await post(url(v.vhost), doc);
      return "Definitions imported.";
    } });
    replace(main, h("h1", {}, "Definitions"),
      h("p", { class: "muted" }, "Users, virtual hosts, permissions, policies, parameters and the durable exchanges, queues and bindings, in RabbitMQ's definitions format."),
      section("Export", exportForm), section("Import", importForm));
    return {};
  },
};
