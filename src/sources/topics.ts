/** MQTT topic filters (MQTT 5 §4.7): `+` matches one level, a trailing `#` any number of levels. */
export function topicMatches(filter: string, topic: string): boolean {
  const f = filter.split("/");
  const t = topic.split("/");
  for (let i = 0; i < f.length; i++) {
    const level = f[i]!;
    if (level === "#") return i < t.length || (i === t.length && i > 0);
    if (i >= t.length) return false;
    if (level !== "+" && level !== t[i]) return false;
  }
  return f.length === t.length;
}
