// The bert4rec page: build a watch history through title autocomplete, then show the
// recommendations from POST /recommend with their genres and leave-one-out explanations.
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
      if ($("search").value.trim() === q) showSuggestions(found.items);
    } catch (err) {
      setStatus(err.message, true);
    }
  }, 120);
}

function showSuggestions(items) {
  state.suggestions = items;
  state.active = items.length ? 0 : -1;
  const list = $("suggestions");
  list.replaceChildren(
    ...items.map((item, i) => {
      const option = el("li", { role: "option", textContent: item.title });
      option.dataset.item = item.item;
      option.addEventListener("mousedown", (event) => {
        event.preventDefault(); // keep focus in the search box
        choose(i);
      });
      return option;
    }),
  );
  list.hidden = items.length === 0;
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
        exclude_seen: $("exclude-seen").checked,
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
  $("results").replaceChildren(
    ...items.map((rec) => {
      const genres = el("div", { className: "genres" },
        ...rec.genres.map((g) => el("span", { className: "genre", textContent: g })));
      const because = el("div", { className: "because" }, explanation(rec.because));
      const add = el("button", { type: "button", className: "add", textContent: "+ add to history" });
      add.addEventListener("click", () => addToHistory(rec));
      return el("li", {},
        el("span", { className: "rank", textContent: rec.rank }),
        el("span", { className: "title", textContent: rec.title }),
        el("span", { className: "score", textContent: rec.score.toFixed(2) }),
        genres, because, add);
    }),
  );
}

function explanation(because) {
  if (!because.length) return "No single history title stands out.";
  const parts = because.map((c) => `${c.title} (−${c.score_drop.toFixed(2)})`);
  return `Because: ${parts.join(", ")}`;
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
