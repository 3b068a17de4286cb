/** Types of serve.mjs (a plain-JavaScript module). */
export declare const REPO_ROOT: string;
export interface StaticServer {
  url: string;
  port: number;
  close(): Promise<void>;
}
export declare function startStaticServer(options?: { root?: string; port?: number }): Promise<StaticServer>;
