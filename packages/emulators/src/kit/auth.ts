/** Reading the credential of a request: `Authorization: <scheme> <credential>` or a bare credential. */

/** `Bearer sk-…` → {scheme: 'Bearer', credential: 'sk-…'}; a bare value → {scheme: '', credential}; none → null. */
export function bearerOrToken(header: string | undefined): { scheme: string; credential: string } | null {
  if (!header) return null;
  const m = /^(\S+)\s+(.+)$/.exec(header.trim());
  return m ? { scheme: m[1]!, credential: m[2]! } : { scheme: '', credential: header.trim() };
}
