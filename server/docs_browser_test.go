package server_test

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/tenantry/tenantry"
)

// browserLog is what Chromium reported while it showed a page: every request it sent, and every
// console message, log entry and exception (CSP violations among them).
type browserLog struct {
	mu       sync.Mutex
	requests []string
	problems []string
}

func (b *browserLog) add(list *[]string, s string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	*list = append(*list, s)
}

func (b *browserLog) snapshot() (requests, problems []string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.requests...), append([]string(nil), b.problems...)
}

// /docs renders the contract in a real browser, headless Chromium driven over the DevTools
// protocol (chromedp): Redoc draws every operation, schemas with their fields, the spec's
// examples and rendered markdown; its search works; and the page sends no request to any host
// but the server, and breaks no rule of its Content-Security-Policy. A screenshot is saved, its
// path logged (and copied to $TENANTRY_DOCS_SCREENSHOT when that is set).
func TestDocsInChromium(t *testing.T) {
	t.Parallel()
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("chromium is missing: .ci/run installs Debian's chromium package")
		}
		t.Skip("chromium is not installed (apt-get install chromium); CI runs this test")
	}
	e := newEnv(t)
	server, err := url.Parse(e.url)
	if err != nil {
		t.Fatal(err)
	}

	// The flags keep Chromium off the network: no background requests of its own, and every
	// host name but loopback resolves to nothing (the page's own requests are checked below).
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"),
		chromedp.WindowSize(1400, 1000),
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	ctx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	defer cancelAlloc()
	ctx, cancelTab := chromedp.NewContext(ctx)
	defer cancelTab()

	var seen browserLog
	err = chromedp.Listen(ctx, func(ev any) {
		switch ev := ev.(type) {
		case *network.EventRequestWillBeSent:
			seen.add(&seen.requests, ev.Request.URL)
		case *network.EventLoadingFailed:
			seen.add(&seen.problems, fmt.Sprintf("request %s failed: %s %s", ev.RequestID, ev.ErrorText, ev.BlockedReason))
		case *runtime.EventConsoleAPICalled:
			if ev.Type == runtime.ConsoleAPICalledTypeError || ev.Type == runtime.ConsoleAPICalledTypeWarning {
				var args []string
				for _, a := range ev.Args {
					args = append(args, string(a.Value)+a.Description)
				}
				seen.add(&seen.problems, fmt.Sprintf("console.%s: %s", ev.Type, strings.Join(args, " ")))
			}
		case *runtime.EventExceptionThrown:
			seen.add(&seen.problems, fmt.Sprintf("exception: %s %s", ev.ExceptionDetails.Text, ev.ExceptionDetails.Exception.Description))
		case *log.EventEntryAdded:
			if ev.Entry.Level == log.EntryLevelError || ev.Entry.Level == log.EntryLevelWarning {
				seen.add(&seen.problems, fmt.Sprintf("%s %s: %s %s", ev.Entry.Source, ev.Entry.Level, ev.Entry.Text, ev.Entry.URL))
			}
		}
	})
	if err != nil {
		t.Fatalf("starting Chromium: %v", err)
	}

	// Every securitypolicyviolation event, collected by a script the DevTools protocol runs
	// before the page's own (it is not the page's, so the CSP does not stop it).
	const recordViolations = `window.__violations = [];
document.addEventListener("securitypolicyviolation", e => window.__violations.push(e.violatedDirective + " " + e.blockedURI));`
	operations := strings.Count(string(tenantry.Spec), "operationId:")
	shot := filepath.Join(t.TempDir(), "docs.png")
	err = chromedp.Do(ctx,
		chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := cdp.Call(ctx, tg, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: recordViolations})
			return err
		}),
		chromedp.Navigate(e.url+"/docs"),
		// Redoc has rendered when every operation of the contract has its section.
		chromedp.Poll[chromedp.Void](fmt.Sprintf(`document.querySelectorAll('[data-section-id*="/operation/"]').length >= %d`, operations),
			chromedp.WithPollingTimeout(2*time.Minute), chromedp.WithPollingInterval(200*time.Millisecond)),
	)
	if err != nil {
		_, problems := seen.snapshot()
		t.Fatalf("Chromium did not render /docs: %v\nwhat it reported: %s", err, strings.Join(problems, "\n"))
	}
	rendered, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll('[data-section-id*="/operation/"]').length`))
	if err != nil {
		t.Fatal(err)
	}
	text, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.innerText`))
	if err != nil {
		t.Fatal(err)
	}
	if rendered != operations {
		t.Errorf("Redoc shows %d operations, the contract has %d", rendered, operations)
	}

	// What a reader sees: schema field names, an example from the spec, rendered markdown (no
	// literal ** or backticks of the spec's descriptions), the shared errors' section.
	for _, want := range []string{
		"next_page_token", "organization_id", // fields of schemas (a list's pagination, a user's organization)
		"Acme Corp",                     // an example value: createOrganization's request and response examples
		"Create an organization",        // an operation's summary
		"Errors every operation shares", // the section of info.description that the shared responses refer to
		"database_busy",                 // one of its rows
		"Request samples", "Response samples",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("the rendered page does not show %q", want)
		}
	}
	// The shared errors are one section of the page, which the operations link to.
	links, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelector('[data-section-id="section/Errors-every-operation-shares"]') ? document.querySelectorAll('a[href="#section/Errors-every-operation-shares"]').length : -1`))
	if err != nil || links < operations/2 {
		t.Errorf("the section Errors every operation shares: %d links to it (%v), want one from most operations", links, err)
	}
	if strings.Contains(text, "**") {
		i := strings.Index(text, "**")
		t.Errorf("the rendered page shows a literal **: …%s…", text[max(0, i-80):min(len(text), i+80)])
	}
	if m := regexp.MustCompile("`[a-z_]+`").FindString(text); m != "" {
		t.Errorf("the rendered page shows markdown code spans unrendered, such as %s", m)
	}

	// A picture of one operation: its description, parameters, body schema and samples.
	err = chromedp.Do(ctx,
		chromedp.Navigate(e.url+"/docs#tag/Organizations/operation/listOrganizations"),
		chromedp.WaitVisible(chromedp.CSS(`[data-section-id="tag/Organizations/operation/listOrganizations"]`)),
		chromedp.Sleep(500*time.Millisecond),
	)
	var png []byte
	if err == nil {
		png, err = chromedp.Run(ctx, chromedp.CaptureScreenshot())
	}
	if err != nil {
		t.Errorf("screenshot: %v", err)
	} else if err := os.WriteFile(shot, png, 0o644); err != nil {
		t.Error(err)
	} else {
		t.Logf("screenshot of /docs: %s", shot)
		if dst := os.Getenv("TENANTRY_DOCS_SCREENSHOT"); dst != "" {
			if err := os.WriteFile(dst, png, 0o644); err != nil {
				t.Error(err)
			}
		}
	}

	// Search works (its index runs in a worker that the CSP must allow).
	search := chromedp.CSS(`input[placeholder="Search..."]`)
	if err := chromedp.Do(ctx, chromedp.SendKeys(search, "provision")); err != nil {
		t.Errorf("typing in the search box: %v", err)
	}
	results, err := chromedp.Run(ctx,
		chromedp.Poll[int](`document.querySelectorAll('[data-role="search:results"] li').length`, chromedp.WithPollingTimeout(10*time.Second)))
	if err != nil || results == 0 {
		t.Errorf("searching for provision: %v, %d results", err, results)
	}

	violations, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`window.__violations`))
	if err != nil {
		t.Errorf("reading the CSP violations: %v", err)
	}
	requests, problems := seen.snapshot()
	for _, v := range violations {
		t.Errorf("Content-Security-Policy violation: %s", v)
	}
	for _, p := range problems {
		t.Errorf("Chromium reported: %s", p)
	}
	var spec, bundle bool
	for _, r := range requests {
		u, err := url.Parse(r)
		if err != nil {
			t.Errorf("request to %q: %v", r, err)
			continue
		}
		switch {
		case u.Scheme == "data" || u.Scheme == "blob":
		case u.Host != server.Host || !isLoopback(u.Hostname()):
			t.Errorf("the page sent a request to another host than the server: %s", r)
		case u.Path == "/openapi.yaml":
			spec = true
		case u.Path == "/docs/redoc.standalone.js":
			bundle = true
		}
	}
	if !spec || !bundle {
		t.Errorf("the page should load /openapi.yaml and the bundle from the server; it asked for %v", requests)
	}
}

func isLoopback(host string) bool {
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
