// Handoff's service worker (scope /console/): shows a page pushed to this device, and acknowledges it from the
// notification's button without opening the app. The notification says only what the SMS would say.
self.addEventListener("install", () => self.skipWaiting());
self.addEventListener("activate", (event) => event.waitUntil(self.clients.claim()));

self.addEventListener("push", (event) => {
  let note;
  try {
    note = event.data ? event.data.json() : {};
  } catch (e) {
    note = { title: "Handoff", body: event.data ? event.data.text() : "" };
  }
  const data = note.data || {};
  event.waitUntil(self.registration.showNotification(note.title || "Handoff", {
    body: note.body || "",
    tag: note.tag || "handoff",
    renotify: true,
    requireInteraction: true,  // a warm handoff waits for an answer
    data: data,
    actions: data.ack_url ? [{ action: "ack", title: "Acknowledge" }] : [],
  }));
});

// The Acknowledge button posts the page's signed link (the credential, as in the SMS) and says what happened.
async function acknowledge(notification) {
  const data = notification.data || {};
  let said;
  try {
    const answer = await fetch(data.ack_url, { method: "POST", credentials: "omit", redirect: "follow" });
    said = answer.ok ? "Acknowledged. The officer is being told you are on the way."
         : answer.status === 409 ? "Someone took this referral already: nothing more to do."
         : answer.status === 410 ? "This page is no longer waiting (its link expired or it was closed)."
         : "Not acknowledged: open the page to see why.";
  } catch (e) {
    said = "Not acknowledged: no connection. Open the page to try again.";
  }
  await self.registration.showNotification("Handoff", { body: said, tag: `${notification.tag}/answer`,
                                                         data: { url: data.ack_url } });
}

self.addEventListener("notificationclick", (event) => {
  const notification = event.notification;
  notification.close();
  if (event.action === "ack" && notification.data && notification.data.ack_url) {
    event.waitUntil(acknowledge(notification));
    return;
  }
  const data = notification.data || {};
  event.waitUntil(self.clients.openWindow(data.ack_url || data.url || "/console"));
});
