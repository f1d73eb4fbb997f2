// The console's shell: the hash router, the navigation and the API key dialog.
import { apiKey, onUnauthorized, setApiKey } from "./api.js";
import { clear, errorBox, h } from "./dom.js";

// #/<page>/<arg>...: each page of the navigation is a module under pages/ exporting render(view, args, query)
const PAGES = new Set([...document.querySelectorAll("#nav a")].map((a) => a.dataset.page));
const main = document.getElementById("main");
const dialog = document.getElementById("key-dialog");
const keyInput = document.getElementById("key-input");

function askForKey() {
  if (dialog.open) return;
  keyInput.value = apiKey();
  dialog.showModal();
}
onUnauthorized(askForKey);
document.getElementById("key-button").addEventListener("click", askForKey);
dialog.addEventListener("close", () => {
  if (dialog.returnValue !== "save") return;
  setApiKey(keyInput.value.trim());
  route();  // reload the page's data with the new key
});

export function parseHash() {
  const [path, search = ""] = location.hash.replace(/^#\/?/, "").split("?");
  const [page, ...args] = path.split("/").map(decodeURIComponent);
  return { page: PAGES.has(page) ? page : "playground", args, query: new URLSearchParams(search) };
}

let current = 0;
async function route() {
  const { page, args, query } = parseHash();
  const token = ++current;
  for (const a of document.querySelectorAll("#nav a")) a.classList.toggle("active", a.dataset.page === page);
  clear(main, h("p", { class: "muted" }, "Loading…"));
  try {
    const module = await import(`./pages/${page}.js`);
    if (token !== current) return;  // the user moved on while it loaded
    const view = h("div", { "data-page": page });
    clear(main, view);
    await module.render(view, args, query);
  } catch (err) {
    if (token === current) clear(main, errorBox(err));
  }
}

window.addEventListener("hashchange", route);
route();
