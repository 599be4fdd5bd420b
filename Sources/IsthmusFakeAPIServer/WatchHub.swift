import NIOConcurrencyHelpers
import NIOCore

/// Wakes watch streams after commits. Watchers live on their channel's event
/// loop; a commit schedules at most one wake-up task per loop, and each
/// watcher then pulls the new entries from the shared log. There is no
/// per-watcher queue: a watcher that cannot keep up falls out of the bounded
/// history and is closed, as the real watch cache closes slow watchers.
final class WatchHub: Sendable {
    final class LoopWatchers: @unchecked Sendable {
        let eventLoop: any EventLoop
        let scheduled = NIOLockedValueBox(false)
        /// Touched on `eventLoop` only.
        var watchers: [ObjectIdentifier: WatchStream] = [:]
        init(eventLoop: any EventLoop) { self.eventLoop = eventLoop }

        func wake() {
            let already = scheduled.withLockedValue { s -> Bool in
                if s { return true }
                s = true
                return false
            }
            if already { return }
            eventLoop.execute {
                self.scheduled.withLockedValue { $0 = false }
                for watcher in Array(self.watchers.values) { watcher.pump() }
            }
        }
    }

    private let loops = NIOLockedValueBox<[ObjectIdentifier: LoopWatchers]>([:])
    let openCount = NIOLockedValueBox(0)

    /// Call on `watcher`'s event loop.
    func register(_ watcher: WatchStream, on eventLoop: any EventLoop) {
        let group = loops.withLockedValue { loops in
            let id = ObjectIdentifier(eventLoop)
            if let g = loops[id] { return g }
            let g = LoopWatchers(eventLoop: eventLoop)
            loops[id] = g
            return g
        }
        group.watchers[ObjectIdentifier(watcher)] = watcher
        openCount.withLockedValue { $0 += 1 }
    }

    /// Call on the watcher's event loop.
    func unregister(_ watcher: WatchStream, on eventLoop: any EventLoop) {
        let group = loops.withLockedValue { $0[ObjectIdentifier(eventLoop)] }
        if group?.watchers.removeValue(forKey: ObjectIdentifier(watcher)) != nil {
            openCount.withLockedValue { $0 -= 1 }
        }
    }

    func notifyAll() {
        for group in loops.withLockedValue({ Array($0.values) }) { group.wake() }
    }
}
