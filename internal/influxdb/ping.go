package influxdb

import (
	"context"
	"fmt"
)

// Ping checks that InfluxDB answers on /ping, for readiness probes.
func (c *Client) Ping(ctx context.Context) error {
	ok, err := c.client.Ping(ctx)
	if err != nil {
		return fmt.Errorf("ping InfluxDB at %s: %w", c.baseURL, err)
	}
	if !ok {
		return fmt.Errorf("ping InfluxDB at %s: not ready", c.baseURL)
	}
	return nil
}
