// The dashboard's shell: the login (the API's bearer token, kept in sessionStorage), the
// navigation and a hash router (#/jails, #/jail/NAME, #/skeletons, #/nodes, #/rollout), so
// the daemon serves one page and no route of its own per view.

import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { ApiError, getToken, onUnauthorized, request, setToken } from './api.ts';
import { JailFeed } from './feed.ts';
import { useFeed } from './parts.tsx';
import { JailPage } from './pages/jail.tsx';
import { JailsPage } from './pages/jails.tsx';
import { NodesPage, RolloutPage, SkeletonsPage } from './pages/other.tsx';

function useHash(): string {
  const [hash, setHash] = useState(location.hash);
  useEffect(() => {
    const on = () => setHash(location.hash);
    window.addEventListener('hashchange', on);
    return () => window.removeEventListener('hashchange', on);
  }, []);
  return hash;
}

function Login({ onDone, failed }: { onDone(): void; failed: boolean }) {
  const [value, setValue] = useState('');
  const [error, setError] = useState<string | undefined>(failed ? 'The daemon refused the token.' : undefined);
  const submit = async (e: Event) => {
    e.preventDefault();
    setToken(value.trim());
    try {
      await request('GET', '/v1/version');
      onDone();
    } catch (err) {
      setToken(null);
      setError(err instanceof ApiError && err.status === 401 ? 'The daemon refused the token.' : String(err));
    }
  };
  return (
    <form class="login" onSubmit={submit}>
      <h2>jailyard</h2>
      <label class="field">
        <span>API token (the content of serve's --token-file)</span>
        <input
          name="token"
          type="password"
          autocomplete="off"
          value={value}
          onInput={(e) => setValue((e.target as HTMLInputElement).value)}
        />
        {error ? (
          <span class="field-error" role="alert">
            {error}
          </span>
        ) : null}
      </label>
      <button type="submit" class="primary">
        Log in
      </button>
    </form>
  );
}

function Shell({ feed, onLogout }: { feed: JailFeed; onLogout(): void }) {
  useFeed(feed);
  const hash = useHash();
  const [path, query] = hash.replace(/^#/, '').split('?') as [string, string | undefined];
  const params = new URLSearchParams(query ?? '');
  const jail = /^\/jail\/(.+)$/.exec(path);
  const current = jail ? 'jails' : (['skeletons', 'nodes', 'rollout'].find((p) => path === `/${p}`) ?? 'jails');
  const page = jail ? (
    <JailPage key={jail[1]} feed={feed} name={decodeURIComponent(jail[1]!)} />
  ) : current === 'skeletons' ? (
    <SkeletonsPage feed={feed} />
  ) : current === 'nodes' ? (
    <NodesPage />
  ) : current === 'rollout' ? (
    <RolloutPage feed={feed} />
  ) : (
    <JailsPage feed={feed} initialSelector={params.get('l') ?? ''} />
  );
  const nav = (id: string, label: string) => (
    <a href={`#/${id}`} class={current === id ? 'current' : ''}>
      {label}
    </a>
  );
  return (
    <>
      <header>
        <h1>jailyard</h1>
        <nav>
          {nav('jails', 'Jails')}
          {nav('skeletons', 'Skeletons')}
          {nav('nodes', 'Nodes')}
          {nav('rollout', 'Rollout')}
        </nav>
        <span class={`feed feed-${feed.status}`} data-testid="feed-status">
          {feed.status}
        </span>
        {getToken() ? (
          <button type="button" class="small" onClick={onLogout}>
            log out
          </button>
        ) : null}
      </header>
      <main>{page}</main>
    </>
  );
}

function App() {
  const [auth, setAuth] = useState<'checking' | 'login' | 'refused' | 'in'>('checking');
  const [feed, setFeed] = useState<JailFeed | undefined>(undefined);
  const check = () =>
    request('GET', '/v1/version').then(
      () => setAuth('in'),
      (e) => setAuth(e instanceof ApiError && e.status === 401 ? (getToken() ? 'refused' : 'login') : 'in'),
    );
  useEffect(() => {
    void check();
    return onUnauthorized(() => setAuth(getToken() ? 'refused' : 'login'));
  }, []);
  useEffect(() => {
    if (auth !== 'in') return;
    const f = new JailFeed();
    setFeed(f);
    void f.run();
    return () => f.stop();
  }, [auth]);
  if (auth === 'checking') return <p class="muted">Connecting...</p>;
  if (auth !== 'in') return <Login failed={auth === 'refused'} onDone={() => setAuth('in')} />;
  if (!feed) return null;
  return (
    <Shell
      feed={feed}
      onLogout={() => {
        setToken(null);
        setAuth('login');
      }}
    />
  );
}

render(<App />, document.getElementById('app')!);
