/* Vigile: passkey (WebAuthn) ceremonies for the forms that ask for one. No framework, no
 * inline script (the pages' CSP is default-src 'self'): load with
 *   <script src="/_vigile/static/passkeys.js" defer></script>
 *
 * The page holds, next to the form:
 *   <script type="application/json" id="webauthn-options">{"publicKey": {...}}</script>
 *   (the options webauthn-rs made; another id can be named by the form's
 *   data-webauthn-options attribute)
 *   <form method="post" data-webauthn="create|get" [data-auto]>
 *     <input type="hidden" name="response">
 *     <p data-webauthn-error hidden>Message shown when the ceremony fails</p>
 *     <p data-webauthn-error="unsupported" hidden>(optional) no WebAuthn here</p>
 *     <button type="submit" ...>
 *   </form>
 *
 * Submitting the form (its button, or Enter) runs navigator.credentials.create or .get
 * first; the credential, as the JSON webauthn-rs reads (binary fields in base64url without
 * padding), goes into the field `response`, then the form is submitted with the button
 * that was pressed. A `get` form with data-auto starts at once when the page loads.
 * If the browser has no WebAuthn, or the ceremony fails (cancelled, timed out, refused),
 * the form's [data-webauthn-error] text is shown and nothing is sent. */
(function () {
  "use strict";

  function toBase64url(buffer) {
    var bytes = new Uint8Array(buffer);
    var binary = "";
    for (var i = 0; i < bytes.length; i++) {
      binary += String.fromCharCode(bytes[i]);
    }
    return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function fromBase64url(text) {
    var b64 = String(text).replace(/-/g, "+").replace(/_/g, "/");
    while (b64.length % 4) {
      b64 += "=";
    }
    var binary = atob(b64);
    var bytes = new Uint8Array(binary.length);
    for (var i = 0; i < binary.length; i++) {
      bytes[i] = binary.charCodeAt(i);
    }
    return bytes.buffer;
  }

  function descriptors(list) {
    return (list || []).map(function (d) {
      var out = { type: d.type, id: fromBase64url(d.id) };
      if (d.transports) {
        out.transports = d.transports;
      }
      return out;
    });
  }

  /* The options as navigator.credentials.create/get take them: the same JSON with its
   * binary fields as ArrayBuffers. */
  function creationOptions(json) {
    var pk = Object.assign({}, json.publicKey);
    pk.challenge = fromBase64url(pk.challenge);
    pk.user = Object.assign({}, pk.user, { id: fromBase64url(pk.user.id) });
    if (pk.excludeCredentials) {
      pk.excludeCredentials = descriptors(pk.excludeCredentials);
    }
    return { publicKey: pk };
  }

  function requestOptions(json) {
    var pk = Object.assign({}, json.publicKey);
    pk.challenge = fromBase64url(pk.challenge);
    if (pk.allowCredentials) {
      pk.allowCredentials = descriptors(pk.allowCredentials);
    }
    var options = { publicKey: pk };
    if (json.mediation) {
      options.mediation = json.mediation;
    }
    return options;
  }

  /* The PublicKeyCredential as webauthn-rs's RegisterPublicKeyCredential or
   * PublicKeyCredential JSON. Extension outputs are not needed by the server: {} keeps
   * the answer readable whatever a browser adds there. */
  function serialise(credential, kind) {
    var r = credential.response;
    var response = { clientDataJSON: toBase64url(r.clientDataJSON) };
    if (kind === "create") {
      response.attestationObject = toBase64url(r.attestationObject);
      if (typeof r.getTransports === "function") {
        response.transports = r.getTransports();
      }
    } else {
      response.authenticatorData = toBase64url(r.authenticatorData);
      response.signature = toBase64url(r.signature);
      response.userHandle = r.userHandle ? toBase64url(r.userHandle) : null;
    }
    return JSON.stringify({
      id: credential.id,
      rawId: toBase64url(credential.rawId),
      type: credential.type,
      response: response,
      extensions: {}
    });
  }

  function supported() {
    return !!(window.PublicKeyCredential && navigator.credentials &&
      typeof navigator.credentials.create === "function" &&
      typeof navigator.credentials.get === "function");
  }

  function errors(form) {
    return Array.prototype.slice.call(form.querySelectorAll("[data-webauthn-error]"));
  }

  function hideErrors(form) {
    errors(form).forEach(function (el) {
      el.hidden = true;
    });
  }

  /* Shows the [data-webauthn-error="<reason>"] element if the page has one, else the
   * first [data-webauthn-error]. */
  function showError(form, reason) {
    var all = errors(form);
    var el = all.filter(function (e) {
      return e.getAttribute("data-webauthn-error") === reason;
    })[0] || all.filter(function (e) {
      return !e.getAttribute("data-webauthn-error");
    })[0] || all[0];
    if (el) {
      el.hidden = false;
      if (!el.hasAttribute("role")) {
        el.setAttribute("role", "alert");
      }
    }
  }

  function readOptions(form) {
    var id = form.getAttribute("data-webauthn-options") || "webauthn-options";
    var script = document.getElementById(id);
    if (!script) {
      return null;
    }
    try {
      return JSON.parse(script.textContent);
    } catch (e) {
      return null;
    }
  }

  function setBusy(form, busy) {
    form.setAttribute("aria-busy", busy ? "true" : "false");
    Array.prototype.forEach.call(
      form.querySelectorAll("button, input[type=submit]"),
      function (b) {
        b.disabled = busy;
      }
    );
  }

  /* Runs the form's ceremony, then submits the form with `submitter` (the button pressed,
   * whose name/value the server may read), or shows the error. */
  function ceremony(form, submitter) {
    if (form.__vigileWebauthnBusy) {
      return;
    }
    hideErrors(form);
    var kind = form.getAttribute("data-webauthn");
    var field = form.querySelector("input[name=response]");
    var json = readOptions(form);
    if (!supported()) {
      showError(form, "unsupported");
      return;
    }
    if (!field || !json || !json.publicKey || (kind !== "create" && kind !== "get")) {
      showError(form, "failed");
      return;
    }
    var started;
    try {
      started = kind === "create"
        ? navigator.credentials.create(creationOptions(json))
        : navigator.credentials.get(requestOptions(json));
    } catch (e) {
      showError(form, "failed");
      return;
    }
    form.__vigileWebauthnBusy = true;
    setBusy(form, true);
    started.then(function (credential) {
      if (!credential) {
        throw new Error("no credential");
      }
      field.value = serialise(credential, kind);
      form.__vigileWebauthnReady = true;
      form.__vigileWebauthnBusy = false;
      setBusy(form, false);
      if (typeof form.requestSubmit === "function") {
        form.requestSubmit(submitter && submitter.form === form ? submitter : undefined);
      } else {
        if (submitter && submitter.name) {
          var extra = document.createElement("input");
          extra.type = "hidden";
          extra.name = submitter.name;
          extra.value = submitter.value;
          form.appendChild(extra);
        }
        form.submit();
      }
    }).catch(function () {
      form.__vigileWebauthnBusy = false;
      setBusy(form, false);
      field.value = "";
      showError(form, "failed");
    });
  }

  function attach(form) {
    form.addEventListener("submit", function (event) {
      if (form.__vigileWebauthnReady) {
        /* The credential is in `response`: let this submission go (once). */
        form.__vigileWebauthnReady = false;
        return;
      }
      event.preventDefault();
      ceremony(form, event.submitter);
    });
  }

  function init() {
    var forms = document.querySelectorAll("form[data-webauthn]");
    Array.prototype.forEach.call(forms, attach);
    Array.prototype.forEach.call(forms, function (form) {
      if (form.getAttribute("data-webauthn") === "get" && form.hasAttribute("data-auto")) {
        ceremony(form, form.querySelector("button[type=submit], button:not([type])"));
      }
    });
  }

  /* A page shown again from the back/forward cache must not resend an old answer. */
  window.addEventListener("pageshow", function (event) {
    if (!event.persisted) {
      return;
    }
    Array.prototype.forEach.call(document.querySelectorAll("form[data-webauthn]"), function (form) {
      form.__vigileWebauthnReady = false;
      form.__vigileWebauthnBusy = false;
      setBusy(form, false);
      var field = form.querySelector("input[name=response]");
      if (field) {
        field.value = "";
      }
    });
  });

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
