// Package influxdb writes domain and host samples to InfluxDB and reads checks back with Flux:
// the groups' built-in cpu and memory means, and the users' own queries (see Sources).
//
// It speaks InfluxDB's v2 API through influxdb-client-go, which InfluxDB 1.8 serves too (with
// flux-enabled): the bucket is "<database>/<retention policy>", the token "user:password", and
// the organisation is ignored.
package influxdb

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	influxdb2 "github.com/influxdata/influxdb-client-go/v2"
	"github.com/influxdata/influxdb-client-go/v2/api"
)

// Measurements, tags and fields PremiScale writes.
const (
	MeasurementDomain = "premiscale_domain"
	MeasurementHost   = "premiscale_host"

	TagGroup    = "group"
	TagInstance = "instance"
	TagHost     = "host"

	FieldCPUPercent      = "cpu_percent"
	FieldMemoryPercent   = "memory_percent"
	FieldCPUs            = "cpus"
	FieldMemoryBytes     = "memory_bytes"
	FieldFreeMemoryBytes = "free_memory_bytes"
)

// retentionPolicy is the policy InfluxDB 1.x creates with every database; writes and queries
// use it so the bucket name works without further setup.
const retentionPolicy = "autogen"

// requestTimeout bounds every HTTP request to InfluxDB; callers' contexts may shorten it.
const requestTimeout = 30 * time.Second

// Client writes samples to and queries one InfluxDB database. It is safe for concurrent use.
type Client struct {
	client   influxdb2.Client
	writer   api.WriteAPIBlocking
	querier  api.QueryAPI
	http     *http.Client
	baseURL  string
	database string
	bucket   string
	username string
	password string
	// retention, when set, is applied to the database's autogen policy by EnsureDatabase.
	retention time.Duration
	logger    *slog.Logger
}

// Options say where the database is. Username "" means no authentication.
type Options struct {
	// URL is http(s)://host:port of InfluxDB.
	URL, Database      string
	Username, Password string
	// Retention, when set, is applied to the database's autogen policy by EnsureDatabase.
	Retention time.Duration
}

// New returns a client for the database o describes. It does not contact the server;
// EnsureDatabase does.
func New(o Options, logger *slog.Logger) (*Client, error) {
	conn := o
	u, err := url.Parse(conn.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("time-series database url %q: want http(s)://host:port", conn.URL)
	}
	if conn.Database == "" {
		return nil, errors.New("time-series database: connection.database is empty")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	base := strings.TrimRight(conn.URL, "/")
	token := ""
	if conn.Username != "" {
		token = conn.Username + ":" + conn.Password
	}
	hc := &http.Client{Timeout: requestTimeout}
	opts := influxdb2.DefaultOptions().SetHTTPClient(hc)
	ic := influxdb2.NewClientWithOptions(base, token, opts)
	bucket := conn.Database + "/" + retentionPolicy
	return &Client{
		client:    ic,
		writer:    ic.WriteAPIBlocking("", bucket),
		querier:   ic.QueryAPI(""),
		http:      hc,
		baseURL:   base,
		database:  conn.Database,
		bucket:    bucket,
		username:  conn.Username,
		password:  conn.Password,
		retention: conn.Retention,
		logger:    logger.With("component", "influxdb", "influxdb", base, "database", conn.Database),
	}, nil
}

// Close releases the client's connections.
func (c *Client) Close() {
	c.client.Close()
}

// EnsureDatabase creates the database (InfluxDB 1.x) if it does not exist, and sets its
// retention when the configuration gives one. On InfluxDB 2.x, where buckets are made by an
// administrator and /query does not exist, it does nothing.
func (c *Client) EnsureDatabase(ctx context.Context) error {
	applicable, err := c.influxQL(ctx, "CREATE DATABASE "+quoteInfluxIdent(c.database))
	if err != nil {
		return fmt.Errorf("create InfluxDB database %s at %s: %w", c.database, c.baseURL, err)
	}
	if !applicable {
		c.logger.Info("InfluxDB has no /query endpoint (2.x?); not creating the database")
		return nil
	}
	if c.retention > 0 {
		// InfluxDB measures retention in whole hours at least; shorter durations are rejected.
		d := c.retention.Round(time.Hour)
		if d < time.Hour {
			d = time.Hour
		}
		q := fmt.Sprintf("ALTER RETENTION POLICY %s ON %s DURATION %dh SHARD DURATION %dh",
			quoteInfluxIdent(retentionPolicy), quoteInfluxIdent(c.database), int64(d/time.Hour), int64(shardDuration(d)/time.Hour))
		if _, err := c.influxQL(ctx, q); err != nil {
			return fmt.Errorf("set retention of InfluxDB database %s at %s to %s: %w", c.database, c.baseURL, d, err)
		}
	}
	return nil
}

// shardDuration is InfluxDB's own default shard group duration for a retention period. It must be
// set with the period: a period shorter than the current shard duration is rejected.
func shardDuration(retention time.Duration) time.Duration {
	const day = 24 * time.Hour
	switch {
	case retention < 2*day:
		return time.Hour
	case retention <= 180*day:
		return day
	default:
		return 7 * day
	}
}

// influxQL runs one statement through the 1.x /query endpoint. It reports false, and no error,
// when the server has no such endpoint (404, as InfluxDB 2.x answers).
func (c *Client) influxQL(ctx context.Context, q string) (bool, error) {
	form := url.Values{"q": {q}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.baseURL+"/query", strings.NewReader(form.Encode()))
	if err != nil {
		return false, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if c.username != "" {
		req.SetBasicAuth(c.username, c.password)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return false, nil
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return true, fmt.Errorf("%s as user %q: %s", q, c.username, resp.Status)
	case resp.StatusCode != http.StatusOK:
		return true, fmt.Errorf("%s: %s: %s", q, resp.Status, strings.TrimSpace(string(body)))
	}
	// InfluxDB 1.x reports a failed statement inside a 200 response.
	var out struct {
		Error   string `json:"error"`
		Results []struct {
			Error string `json:"error"`
		} `json:"results"`
	}
	if err := json.Unmarshal(body, &out); err != nil {
		return true, fmt.Errorf("%s: decode response %q: %w", q, body, err)
	}
	if out.Error != "" {
		return true, fmt.Errorf("%s: %s", q, out.Error)
	}
	for _, r := range out.Results {
		if r.Error != "" {
			return true, fmt.Errorf("%s: %s", q, r.Error)
		}
	}
	return true, nil
}

// quoteInfluxIdent quotes an InfluxQL identifier.
func quoteInfluxIdent(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}
