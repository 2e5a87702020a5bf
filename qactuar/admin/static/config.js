/* qactuar admin dashboard: the config table, the live keys editable (PATCH config).
 *
 * GET config -> {"config": {"KEY": value}, "live" | "live_keys": [...]}; a live key's
 * input is typed as its value is (a checkbox for a boolean, a number parsed, JSON for
 * a list); the server's refusal (400, 409) is shown next to the key.
 */
import {shown} from "./format.js";

/** ``page``: {api(method, path, body), signedOut(message), setMessage(text, isError)}. */
export function configTable(page) {
  const {api, signedOut, setMessage} = page;

  function cell(row, text) {
    const td = document.createElement("td");
    td.textContent = text;
    row.appendChild(td);
    return td;
  }


  function parseInput(input, current) {
    if (typeof current === "boolean") return {value: input.checked};
    const text = input.value;
    if (typeof current === "number") {
      const n = Number(text.trim());
      if (text.trim() === "" || !isFinite(n)) return {error: "not a number: " + text};
      return {value: n};
    }
    if (typeof current === "string") return {value: text};
    try {
      return {value: JSON.parse(text)};
    } catch (err) {
      return current === null ? {value: text} : {error: "not valid JSON: " + text};
    }
  }

  function render(config, liveKeys) {
    const live = new Set(liveKeys);
    const body = document.querySelector("#config tbody");
    const rows = Object.keys(config).sort().map((key) => {
      const value = config[key];
      const row = document.createElement("tr");
      row.dataset.key = key;
      const th = document.createElement("th");
      th.scope = "row";
      th.textContent = key;
      row.appendChild(th);
      const valueCell = document.createElement("td");
      const actionCell = document.createElement("td");
      row.appendChild(valueCell);
      cell(row, live.has(key) ? "live" : "restart");
      row.appendChild(actionCell);
      if (!live.has(key)) {
        valueCell.textContent = shown(value);
        return row;
      }
      const label = document.createElement("label");
      label.className = "visually-hidden";
      label.htmlFor = "config-" + key;
      label.textContent = key;
      const input = document.createElement("input");
      input.id = "config-" + key;
      input.name = key;
      if (typeof value === "boolean") {
        input.type = "checkbox";
        input.checked = value;
      } else {
        input.type = "text";
        input.value = shown(value);
        input.spellcheck = false;
      }
      const error = document.createElement("span");
      error.className = "error";
      error.id = "config-error-" + key;
      error.setAttribute("role", "alert");
      input.setAttribute("aria-describedby", error.id);
      valueCell.append(label, input, error);
      const button = document.createElement("button");
      button.type = "button";
      button.id = "config-save-" + key;
      button.textContent = "Apply";
      button.setAttribute("aria-label", "Apply " + key);
      button.addEventListener("click", () => applyConfig(key, value, input, error));
      input.addEventListener("keydown", (event) => {
        if (event.key === "Enter") applyConfig(key, value, input, error);
      });
      actionCell.appendChild(button);
      return row;
    });
    body.replaceChildren.apply(body, rows);
  }

  async function load() {
    let data;
    try {
      data = await api("GET", "config");
    } catch (err) {
      document.getElementById("config-error").textContent = "Config: " + err.message;
      if (err.status === 401) signedOut("Your session ended: sign in again.");
      return;
    }
    document.getElementById("config-error").textContent = "";
    const config = data && typeof data.config === "object" && data.config ? data.config : {};
    const live = Array.isArray(data && data.live) ? data.live
      : Array.isArray(data && data.live_keys) ? data.live_keys : [];
    render(config, live);
  }

  async function applyConfig(key, current, input, error) {
    error.textContent = "";
    const parsed = parseInput(input, current);
    if (parsed.error) {
      error.textContent = parsed.error;
      return;
    }
    const change = {};
    change[key] = parsed.value;
    try {
      await api("PATCH", "config", change);
    } catch (err) {
      error.textContent = err.status ? err.status + ": " + err.message : err.message;
      if (err.status === 401) signedOut("Your session ended: sign in again.");
      return;
    }
    setMessage(key + " set to " + shown(parsed.value) + ".", false);
    load();  // the value in force, as the server holds it
  }

  return {load: load};
}
