// The bert4rec page: build a watch history through title autocomplete, then show the
// recommendations from POST /recommend with their genres, leave-one-out explanations, a bar
// of how likely each is next relative to the first, links out, and each one's similar items.
"use strict";

const state = { history: [], suggestions: [], active: -1, searchTimer: null, request: 0 };

const $ = (id) => document.getElementById(id);
const el = (tag, props = {}, ...children) => {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...children);
  return node;
};

async function getJSON(url, options) {
  const response = await fetch(url, options);
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    const detail = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail);
    throw new Error(detail || `HTTP ${response.status}`);
  }
  return body;
}

// ---- autocomplete ----------------------------------------------------------------------

function onSearchInput() {
  clearTimeout(state.searchTimer);
  const q = $("search").value.trim();
  if (!q) return showSuggestions([]);
  state.searchTimer = setTimeout(async () => {
    try {
      const found = await getJSON(`/items?q=${encodeURIComponent(q)}&limit=8`);
      if ($("search").value.trim() === q) showSuggestions(found.items, q);
    } catch (err) {
      setStatus(err.message, true);
    }
  }, 120);
}

// `query` is set when a search found nothing: the list then says so instead of closing.
function showSuggestions(items, query = "") {
  state.suggestions = items;
  state.active = items.length ? 0 : -1;
  const list = $("suggestions");
  const options = items.map((item, i) => {
    const option = el("li", { role: "option", textContent: item.title });
    option.dataset.item = item.item;
    option.addEventListener("mousedown", (event) => {
      event.preventDefault(); // keep focus in the search box
      choose(i);
    });
    return option;
  });
  if (!items.length && query) {
    const none = el("li", { className: "no-match", textContent: `No title matches “${query}”.` });
    none.setAttribute("aria-disabled", "true");
    options.push(none);
  }
  list.replaceChildren(...options);
  list.hidden = options.length === 0;
  $("search").setAttribute("aria-expanded", String(items.length > 0));
  highlight();
}

function highlight() {
  [...$("suggestions").children].forEach((option, i) => {
    option.setAttribute("aria-selected", String(i === state.active));
  });
}

function onSearchKey(event) {
  const n = state.suggestions.length;
  if (event.key === "ArrowDown" && n) state.active = (state.active + 1) % n;
  else if (event.key === "ArrowUp" && n) state.active = (state.active - 1 + n) % n;
  else if (event.key === "Enter" && state.active >= 0) choose(state.active);
  else if (event.key === "Escape") showSuggestions([]);
  else return;
  event.preventDefault();
  highlight();
}

function choose(index) {
  addToHistory(state.suggestions[index]);
  $("search").value = "";
  showSuggestions([]);
}

// ---- history ---------------------------------------------------------------------------

function addToHistory(item) {
  if (!state.history.some((seen) => seen.item === item.item)) state.history.push(item);
  renderHistory();
  recommend();
}

function renderHistory() {
  $("history").replaceChildren(
    ...state.history.map((item, i) => {
      const remove = el("button", { type: "button", title: "Remove", textContent: "×" });
      remove.setAttribute("aria-label", `Remove ${item.title}`);
      remove.addEventListener("click", () => {
        state.history.splice(i, 1);
        renderHistory();
        recommend();
      });
      return el("li", {}, item.title, remove);
    }),
  );
  $("history-empty").hidden = state.history.length > 0;
}

// ---- recommendations -------------------------------------------------------------------

async function recommend() {
  const ticket = ++state.request; // ignore answers to requests that were overtaken
  if (!state.history.length) {
    $("results").replaceChildren();
    return setStatus("Recommendations appear once your history has a title.");
  }
  setStatus("Thinking…");
  try {
    const answer = await getJSON("/recommend", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({
        history: state.history.map((item) => item.item),
        k: Number($("k").value),
        filter_viewed: $("exclude-seen").checked,
        explain: true,
      }),
    });
    if (ticket !== state.request) return;
    renderResults(answer.items);
    setStatus(`${answer.items.length} recommendations for ${state.history.length} titles.`);
  } catch (err) {
    if (ticket === state.request) setStatus(err.message, true);
  }
}

function renderResults(items) {
  const best = items.length ? items[0].score : 0;
  $("results").replaceChildren(
    ...items.map((rec) => {
      // exp(score - best score): the item's probability next relative to the first one's
      const share = Math.exp(rec.score - best);
      const because = el("div", { className: "because" }, explanation(rec.because));
      const add = el("button", { type: "button", className: "add", textContent: "+ add to history" });
      add.addEventListener("click", () => addToHistory(rec));
      const similar = el("ol", { className: "similar" });
      similar.hidden = true;
      const toggle = el("button", { type: "button", className: "show-similar", textContent: "Similar" });
      toggle.setAttribute("aria-expanded", "false");
      toggle.addEventListener("click", () => toggleSimilar(rec, toggle, similar));
      return el("li", {},
        el("span", { className: "rank", textContent: rec.rank }),
        el("span", { className: "title", textContent: rec.title }),
        bar(share, `${Math.round(share * 100)}% as likely as the first`),
        genreList(rec.genres), because,
        el("div", { className: "actions" }, add, toggle, ...linksOut(rec.links)),
        similar);
    }),
  );
}

function bar(value, label) {
  const meter = el("meter", { className: "bar", min: 0, max: 1, value, title: label });
  meter.setAttribute("aria-label", label);
  return meter;
}

function genreList(genres) {
  return el("div", { className: "genres" },
    ...genres.map((g) => el("span", { className: "genre", textContent: g })));
}

const SITES = { imdb: "IMDb", tmdb: "TMDB" };

function linksOut(links) {
  return Object.entries(links || {})
    .filter(([site, url]) => site in SITES && url.startsWith("https://"))
    .map(([site, url]) => el("a", {
      className: "link", href: url, target: "_blank", rel: "noopener noreferrer",
      textContent: SITES[site],
    }));
}

const SIMILAR_SHOWN = 5;
const MAX_K = 100; // the API's most similar items per request

// The items whose embeddings are closest to `rec`'s, fetched once and shown under it; with
// "Hide what I watched" checked, none of the history (asked for as many more as it holds).
async function toggleSimilar(rec, toggle, list) {
  const open = list.hidden;
  list.hidden = !open;
  toggle.setAttribute("aria-expanded", String(open));
  toggle.textContent = open ? "Hide similar" : "Similar";
  if (!open || list.dataset.loaded) return;
  list.replaceChildren(el("li", { className: "hint", textContent: "Looking…" }));
  const seen = new Set($("exclude-seen").checked ? state.history.map((item) => item.item) : []);
  const k = Math.min(MAX_K, SIMILAR_SHOWN + seen.size);
  try {
    const found = await getJSON(`/items/${encodeURIComponent(rec.item)}/similar?k=${k}`);
    const shown = found.items.filter((item) => !seen.has(item.item)).slice(0, SIMILAR_SHOWN);
    list.dataset.loaded = "yes";
    list.replaceChildren(
      ...shown.map((item) => {
        const add = el("button", { type: "button", className: "add", textContent: "+ add" });
        add.addEventListener("click", () => addToHistory(item));
        const cosine = Math.max(0, item.score);
        return el("li", {},
          el("span", { className: "title", textContent: item.title }),
          bar(cosine, `similarity ${cosine.toFixed(2)} (cosine of the item embeddings)`),
          el("div", { className: "actions" }, add, ...linksOut(item.links)));
      }),
    );
  } catch (err) {
    list.replaceChildren(el("li", { className: "error", textContent: err.message }));
  }
}

// The history titles a recommendation owes most to, largest score drop first (no numbers:
// score differences are logits, which mean nothing to a reader).
function explanation(because) {
  if (!because.length) return "No single history title stands out.";
  return `Because: ${because.map((c) => c.title).join(", ")}`;
}

function setStatus(text, isError = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", isError);
}

// ---- wiring ----------------------------------------------------------------------------

$("search").addEventListener("input", onSearchInput);
$("search").addEventListener("keydown", onSearchKey);
$("search").addEventListener("blur", () => setTimeout(() => showSuggestions([]), 100));
$("k").addEventListener("change", recommend);
$("exclude-seen").addEventListener("change", recommend);
$("clear").addEventListener("click", () => {
  state.history = [];
  renderHistory();
  recommend();
});
renderHistory();
