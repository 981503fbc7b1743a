// A list kept on the server: every refresh asks the API for one page, filtered and sorted
// there (RabbitMQ's `page`, `page_size`, `name`, `use_regex`, `sort`, `sort_reverse`), and
// draws the pagination envelope it gets back. So a broker with 10,000 queues sends one
// page of rows, never the whole list.

import { get } from "./api.js";
import { h, num, replace, message } from "./dom.js";

const remembered = new Map(); // list id -> its filter, sort and page, across page changes
const PAGE_SIZES = [20, 50, 100, 500];

export function pagedTable({ id, url, columns, noun = "items", sort = "name" }) {
  const state = remembered.get(id) || { page: 1, pageSize: 100, name: "", regex: false,
    sort, reverse: false };
  remembered.set(id, state);

  const filter = h("input", { id: `${id}-filter`, type: "search", placeholder: "Filter by name",
    value: state.name, oninput: () => { state.name = filter.value; state.page = 1; refresh(); } });
  const regex = h("input", { id: `${id}-regex`, type: "checkbox", checked: state.regex,
    onchange: () => { state.regex = regex.checked; state.page = 1; refresh(); } });
  const size = h("select", { id: `${id}-page-size`, onchange: () => {
    state.pageSize = Number(size.value); state.page = 1; refresh(); } },
  PAGE_SIZES.map((n) => h("option", { value: n, selected: n === state.pageSize }, `${n} per page`)));
  const count = h("span", { id: `${id}-count`, class: "muted" });
  const head = h("thead");
  const body = h("tbody");
  const pager = h("div", { class: "pager", id: `${id}-pager` });
  const status = h("div");
  const table = h("table", { id, class: "list" }, head, body);
  const el = h("div", { class: "paged" },
    h("div", { class: "toolbar" }, filter, h("label", {}, regex, " regex"), size, count),
    status, table, pager);

  function drawHead() {
    replace(head, h("tr", {}, columns.map((c) => {
      if (!c.sort) return h("th", {}, c.label);
      const mark = state.sort === c.sort ? (state.reverse ? " ▼" : " ▲") : "";
      return h("th", { class: "sortable", id: `${id}-sort-${c.sort}`, onclick: () => {
        state.reverse = state.sort === c.sort ? !state.reverse : false;
        state.sort = c.sort;
        refresh();
      } }, c.label + mark);
    })));
  }

  function drawPager(envelope) {
    const go = (page) => () => { state.page = page; refresh(); };
    replace(pager,
      h("button", { type: "button", id: `${id}-prev`, disabled: envelope.page <= 1,
        onclick: go(envelope.page - 1) }, "‹ Previous"),
      h("span", { id: `${id}-page`, "data-page": envelope.page,
        "data-page-count": envelope.page_count },
      `Page ${num(envelope.page)} of ${num(envelope.page_count)}`),
      h("button", { type: "button", id: `${id}-next`,
        disabled: envelope.page >= envelope.page_count, onclick: go(envelope.page + 1) },
      "Next ›"));
    const filtered = envelope.filtered_count !== envelope.total_count
      ? ` (${num(envelope.filtered_count)} match)` : "";
    replace(count, `${num(envelope.total_count)} ${noun}${filtered}`);
  }

  let seq = 0; // answers that arrive out of order (typing in the filter) are dropped
  async function refresh() {
    const mine = ++seq;
    const query = { page: state.page, page_size: state.pageSize, name: state.name,
      use_regex: state.regex ? "true" : "", sort: state.sort,
      sort_reverse: state.reverse ? "true" : "" };
    let envelope;
    try {
      envelope = await get(url(), query);
    } catch (error) {
      if (mine !== seq) return;
      if (error.status === 400 && state.page > 1) { state.page = 1; return refresh(); }
      message(status, error.message);
      return;
    }
    if (mine !== seq) return;
    message(status, "");
    drawHead();
    replace(body, envelope.items.length
      ? envelope.items.map((item) => h("tr", {}, columns.map((c) =>
        h("td", { class: c.class }, c.render ? c.render(item) : item[c.key]))))
      : h("tr", {}, h("td", { colspan: columns.length, class: "muted" }, `no ${noun}`)));
    drawPager(envelope);
  }

  drawHead();
  return { el, refresh };
}
