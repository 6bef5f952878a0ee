package testservices

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/premiscale/premiscale/internal/config"
)

// MariaDB is a private MariaDB server with the user premiscale/premiscale (all privileges),
// its data directory in the service's folder.
type MariaDB struct{ *Service }

// StartMariaDB initialises a data directory (mariadb-install-db) and starts a MariaDB server of
// the test's own on a free port of 127.0.0.1, with its socket in its folder.
func StartMariaDB(t testing.TB) *MariaDB {
	t.Helper()
	svc := newMariaDB(t)
	svc.Start()
	return svc
}

// newMariaDB prepares what StartMariaDB starts.
func newMariaDB(t testing.TB) *MariaDB {
	t.Helper()
	installDB := lookTool(t, "mariadb-install-db")
	bin := lookTool(t, "mariadbd")
	port := FreePort(t)
	s := newService(t, "mariadb", fmt.Sprintf("MariaDB on 127.0.0.1:%d", port))
	s.addr = "127.0.0.1:" + strconv.Itoa(port)
	data := filepath.Join(s.dir, "data")
	// mariadbd refuses to run as root unless told to; as anyone else it runs as itself.
	user := []string{}
	if os.Geteuid() == 0 {
		user = []string{"--user=root"}
	}
	// Small redo logs and buffer pool: the defaults take 100 MB of disk per server.
	sizes := []string{"--innodb-log-file-size=8M", "--innodb-buffer-pool-size=32M"}
	install := exec.Command(installDB, append(append([]string{"--no-defaults", "--datadir=" + data,
		"--auth-root-authentication-method=socket", "--skip-test-db"}, user...), sizes...)...)
	if out, err := install.CombinedOutput(); err != nil {
		t.Fatalf("testservices: mariadb-install-db into %s: %v\n%s", data, err, out)
	}
	// Run at every start; idempotent.
	initSQL := filepath.Join(s.dir, "init.sql")
	if err := os.WriteFile(initSQL, []byte(fmt.Sprintf(
		"CREATE USER IF NOT EXISTS '%[1]s'@'%%' IDENTIFIED BY '%[2]s';\nGRANT ALL PRIVILEGES ON *.* TO '%[1]s'@'%%';\n",
		DefaultMySQLUser, DefaultMySQLPassword)), 0o600); err != nil {
		t.Fatalf("testservices: write %s: %v", initSQL, err)
	}
	s.command = func() *exec.Cmd {
		args := append([]string{"--no-defaults", "--datadir=" + data,
			"--bind-address=127.0.0.1", "--port=" + strconv.Itoa(port),
			"--socket=" + filepath.Join(s.dir, "mysqld.sock"), "--pid-file=" + filepath.Join(s.dir, "mysqld.pid"),
			"--init-file=" + initSQL, "--skip-log-bin", "--skip-name-resolve"}, user...)
		return exec.Command(bin, append(args, sizes...)...)
	}
	s.ready = func(ctx context.Context) error { return mysqlPing(ctx, s.addr) }
	return &MariaDB{s}
}

// Database creates a fresh database on this server and returns a state database configuration
// pointing at it, for the user premiscale.
func (s *MariaDB) Database(t testing.TB) config.StateDB {
	t.Helper()
	return mysqlAt(t, s.addr, DefaultMySQLUser, DefaultMySQLPassword, false)
}

// mysqlPing logs in as premiscale at addr and pings once.
func mysqlPing(ctx context.Context, addr string) error {
	mc := mysql.NewConfig()
	mc.Net, mc.Addr = "tcp", addr
	mc.User, mc.Passwd = DefaultMySQLUser, DefaultMySQLPassword
	mc.Timeout = 2 * time.Second
	connector, err := mysql.NewConnector(mc)
	if err != nil {
		return err
	}
	db := sql.OpenDB(connector)
	defer db.Close()
	return db.PingContext(ctx)
}
