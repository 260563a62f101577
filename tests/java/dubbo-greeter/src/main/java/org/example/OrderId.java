package org.example;

import java.io.Serializable;

/** The id of an accepted order (Hessian2 typed object "org.example.OrderId"). */
public class OrderId implements Serializable {
    private static final long serialVersionUID = 1L;

    private long id;

    public OrderId() {}

    public OrderId(long id) { this.id = id; }

    public long getId() { return id; }
    public void setId(long id) { this.id = id; }

    @Override
    public String toString() { return "OrderId{id=" + id + "}"; }
}
